/*
 * Issue 14 item 1 ("a real disk path works the same as an image file"): a RAID-5 on kernel loop
 * devices, through the CLI — create on /dev/loopN, mkfs, files written through the engine, one
 * member failed and detached, everything read degraded, replace onto a fourth loop device, then
 * `volume export` judged by e2fsck -fn and by the kernel's own loop mount, read-only. Needs root
 * and free /dev/loop* devices; skipped with the reason otherwise. Every loop device attached is
 * detached in teardown, and the mount undone, even when a step fails.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { openVolume } from '../../../vfs/volume/open-volume.ts'
import { seededBytes, tsnfsRaw } from '../engine/format-helpers.ts'
import { e2fsck } from '../engine/fsck-helpers.ts'

t.setTimeout(120_000)
const DISK = 24 * 1024 * 1024
const owner = { uid: 0, gid: 0 }

function run(cmd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return { code: r.status, out: r.stdout, err: `${r.stderr}${r.error?.message ?? ''}` }
}

/** Why loop devices cannot be used here, or null when they can. */
function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to attach loop devices'
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control (no loop driver)'
  for (const tool of ['losetup', 'e2fsck', 'mount', 'umount']) {
    if (run('sh', ['-c', `command -v ${tool}`]).code !== 0) return `${tool} is not installed`
  }
  const free = run('losetup', ['-f'])
  if (free.code !== 0) return `no free loop device (losetup -f: ${free.err.trim()})`
  return null
}

const why = unavailable()
if (why !== null) {
  t.plan(0, `skipped: loop devices unusable here (${why})`)
} else {
  t.test('RAID-5 on loop devices: create, mkfs, write, fail, read degraded, replace, export, e2fsck, loop mount', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-volume-loop-'))
    const attached: string[] = []
    const mnt = path.join(dir, 'mnt')
    let mounted = false
    // One teardown, in this order: the mount, then the loop devices, then the files under them.
    t.teardown(() => {
      if (mounted) run('umount', [mnt])
      for (const dev of attached) {
        const r = run('losetup', ['-d', dev])
        if (r.code !== 0) process.stderr.write(`losetup -d ${dev}: ${r.err}\n`)
      }
      fs.rmSync(dir, { recursive: true, force: true })
    })
    const attach = (file: string): string => {
      fs.writeFileSync(file, '')
      fs.truncateSync(file, DISK)
      const r = run('losetup', ['-f', '--show', file])
      if (r.code !== 0) throw new Error(`losetup -f --show ${file}: ${r.err}`)
      const dev = r.out.trim()
      attached.push(dev)
      return dev
    }
    const detach = (dev: string): void => {
      const r = run('losetup', ['-d', dev])
      if (r.code !== 0) throw new Error(`losetup -d ${dev}: ${r.err}`)
      attached.splice(attached.indexOf(dev), 1)
    }
    const cli = async (args: string[]): Promise<{ code: number | null; out: string; err: string }> => {
      const r = await tsnfsRaw(['volume', ...args])
      return { code: r.code, out: r.stdout.toString(), err: r.stderr }
    }

    const loops = ['d0', 'd1', 'd2', 'd3'].map((n) => attach(path.join(dir, `${n}.img`)))
    const [l0, l1, l2, l3] = loops as [string, string, string, string]
    t.comment(`loop devices ${loops.join(' ')}`)

    // Size detection of a block device: st_size is 0 there, the size must come from the device.
    t.equal(fs.statSync(l0).size, 0, 'stat of a block device reports no size')
    const probe = await ImageFile.open(l0)
    t.equal(probe.kind, 'block-device')
    t.equal(probe.size, DISK, 'ImageFile finds the loop device size')
    t.equal(probe.sectorSize % 512, 0)
    await probe.close()

    const made = await cli(['create', 'loopvol', '--level', 'raid5', l0, l1, l2])
    t.equal(made.code, 0, made.err)
    const mk = await cli(['mkfs', l0, l1, l2])
    t.equal(mk.code, 0, mk.err)

    const seed = Number(process.env.TSNFS_VOLUME_SEED ?? Date.now() % 100000)
    t.comment(`seed ${seed}`)
    const bytes = seededBytes(seed)
    const files = new Map<string, Buffer>([
      ['small.txt', Buffer.from('hello from loop devices\n')],
      ['one.bin', bytes(1024 * 1024 + 123)],
      ['two.bin', bytes(3 * 1024 * 1024 + 4567)],
    ])
    const v = await openVolume([l0, l1, l2])
    const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
    for (const [name, data] of files) {
      const ref = (await e.create(e.root(), Buffer.from(name), { how: 'unchecked', attr: {} }, owner)).ref
      await e.write(ref, 0n, data, 'file_sync')
    }
    await e.close()
    await v.close()

    // Member 1 fails and its disk goes away.
    const failed = await cli(['fail', l0, l1, l2, '--member', '1'])
    t.equal(failed.code, 0, failed.err)
    detach(l1)
    const st = await cli(['status', l0, l2])
    t.equal(st.code, 1, `degraded: exit 1 (${st.err})`)
    t.match(st.out, /degraded/)

    const degraded = await openVolume([l0, l2])
    t.equal(degraded.device.size > 0, true)
    const de = await openEngineOn(degraded.device, { commitIntervalMs: 0 })
    for (const [name, data] of files) {
      const { ref } = await de.lookup(de.root(), Buffer.from(name))
      const got = await de.read(ref, 0n, data.length + 10)
      t.ok(Buffer.from(got.data).equals(data), `${name} reads back degraded, byte-exact`)
    }
    await de.close()
    await degraded.close()

    const rep = await cli(['replace', l0, l2, '--member', '1', '--new', l3])
    t.equal(rep.code, 0, rep.err)
    const whole = await cli(['status', l0, l2, l3])
    t.equal(whole.code, 0, `whole again (${whole.out}${whole.err})`)

    const image = path.join(dir, 'export.img')
    const ex = await cli(['export', l0, l2, l3, '--to', image])
    t.equal(ex.code, 0, ex.err)
    const fsck = e2fsck(image)
    t.equal(fsck.code, 0, `e2fsck -fn clean: ${fsck.out}`)
    t.notMatch(fsck.out, /\? no$|IGNORED/m, 'and nothing left unfixed')

    fs.mkdirSync(mnt)
    const m = run('mount', ['-o', 'loop,ro', image, mnt])
    t.equal(m.code, 0, `mount -o loop,ro: ${m.err}`)
    if (m.code === 0) {
      mounted = true
      for (const [name, data] of files) t.ok(fs.readFileSync(path.join(mnt, name)).equals(data), `${name} through the kernel's ext4, byte-exact`)
      const u = run('umount', [mnt])
      t.equal(u.code, 0, u.err)
      if (u.code === 0) mounted = false
    }
  })
}
