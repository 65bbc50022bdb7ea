/*
 * `tsnfs volume export NAME FILE --snapshot SNAP --admin SOCK`: the server writes a snapshot of
 * the volume it serves as a linear image, while a client keeps overwriting the file the snapshot
 * holds (each overwrite copies old chunks into the store under the export: only the server's
 * index knows where they went). The image is e2fsck -fn clean and holds the files as they were
 * at the snapshot, byte-exact (debugfs; the kernel's loop mount as root). Refusals: no --snapshot
 * (a served volume changes under a whole export), a snapshot that does not exist, one of the
 * volume's own disks as FILE, a relative path in a bare request. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw, whyNoLoopMount, withMount } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(180_000)
const dir = scratch(t, 'volume-snapshot-export-online')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const bytes = seededBytes(seed)
const oldA = bytes(3 * 1024 * 1024 + 5)
const oldB = bytes(200_000)
const disks = ['m0.img', 'm1.img'].map((n) => path.join(dir, n))
const line = `/data *(rw,insecure,no_root_squash,backend=engine,volume=snapon,disks=${dir}/m*.img)\n`

async function vol(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

/** The file `name` of `image` as debugfs dumps it; undefined when there is none. */
function dumped(image: string, name: string): Buffer | undefined {
  const out = path.join(dir, 'dumped')
  fs.rmSync(out, { force: true })
  debugfs(image, `dump ${name} ${out}`, false)
  return fs.existsSync(out) ? fs.readFileSync(out) : undefined
}

t.before(async () => {
  const made = await vol(['create', 'snapon', '--level', 'mirror', '--size', '32M', '--snapshot-store', '10M', ...disks])
  if (made.code !== 0) throw new Error(made.err)
  const mkfs = await vol(['mkfs', ...disks])
  if (mkfs.code !== 0) throw new Error(mkfs.err)
})

t.test('a served snapshot exported while a client overwrites its files', async (t) => {
  const sock = path.join(dir, 'admin.sock')
  const s = await startServer(t, line, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  await c.writeFile('/a.bin', oldA)
  await c.mkdir('/d')
  await c.writeFile('/d/b.bin', oldB)
  const snap = await vol(['snapshot', 'create', 'snapon', 'early', '--admin', sock])
  t.equal(snap.code, 0, snap.err)
  await c.unlink('/d/b.bin')
  await c.writeFile('/c.bin', bytes(100_000))

  // Overwrites of a.bin, in place, for as long as the export runs (and at least one).
  const state = { exporting: true }
  let rounds = 0
  let last = oldA
  const writer = (async () => {
    do {
      last = bytes(oldA.length)
      await c.writeFile('/a.bin', last)
      rounds++
    } while (state.exporting)
  })()
  const image = path.join(dir, 'early.img')
  const ex = await vol(['export', 'snapon', image, '--snapshot', 'early', '--admin', sock]).finally(() => {
    state.exporting = false
  })
  await writer
  t.equal(ex.code, 0, ex.err)
  t.match(ex.out, /^.*early\.img: 22020096 bytes of snapshot early of volume snapon \(\d+ bytes of data written\)\n$/, 'a 32 MiB leg less 1 MiB reserved less the 10 MiB store')
  t.comment(`${rounds} overwrites of a.bin beside the export`)
  t.ok((await c.readFile('/a.bin')).equals(last), 'the live file has the last bytes written')

  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `e2fsck -fn clean on the snapshot image: ${fsck.out}`)
  t.notMatch(fsck.out, /\? no$|IGNORED/m, 'nothing left unfixed')
  t.ok(dumped(image, '/a.bin')?.equals(oldA), 'a.bin as at the snapshot, byte-exact')
  t.ok(dumped(image, '/d/b.bin')?.equals(oldB), 'd/b.bin, removed since, is there')
  t.equal(dumped(image, '/c.bin'), undefined, 'c.bin, made since, is not')
  const why = whyNoLoopMount()
  if (why !== undefined) t.comment(`kernel check skipped: ${why}`)
  else {
    await withMount(t, image, (mnt) => {
      t.ok(fs.readFileSync(path.join(mnt, 'a.bin')).equals(oldA), 'the kernel reads the snapshot a.bin byte-exact')
      t.ok(fs.readFileSync(path.join(mnt, 'd/b.bin')).equals(oldB), 'and d/b.bin')
    })
  }

  const whole = await vol(['export', 'snapon', path.join(dir, 'whole.img'), '--admin', sock])
  t.equal(whole.code, 2)
  t.match(whole.err, /^tsnfs volume: online: volume export of served volume snapon needs --snapshot SNAP \(take one with: tsnfs volume snapshot create snapon SNAP\)\n/)
  const none = await vol(['export', 'snapon', path.join(dir, 'none.img'), '--snapshot', 'nope', '--admin', sock])
  t.equal(none.code, 8)
  t.equal(none.err, 'tsnfs volume export: VOLUME_SNAPSHOT: no snapshot nope\n')
  const member = await vol(['export', 'snapon', disks[1] ?? '', '--snapshot', 'early', '--admin', sock])
  t.equal(member.code, 8)
  t.equal(member.err, `tsnfs volume export: VOLUME_MEMBER: ${disks[1] ?? ''} is one of the volume's disks already\n`)
  const relative = await adminRequest(sock, { command: 'snapshot-export', volume: 'snapon', snapshot: 'early', file: 'rel.img' })
  t.match(relative, { ok: false, code: 'ADMIN_BAD_ARGUMENT', message: 'snapshot-export: "file" must be an absolute path, got rel.img' })
  t.notOk(fs.existsSync(path.join(dir, 'none.img')), 'a refused export makes no file')
  t.ok((await c.readFile('/a.bin')).equals(last), 'the export serves on')
  await c.umount()
  await s.server.close()
})
