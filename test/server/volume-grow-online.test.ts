/*
 * tsnfs volume grow through a serving server's admin socket: a span of two disks takes a third
 * (`volume grow NAME NEWDISK --admin SOCK`), and the file system on it grows onto the new space
 * while the export serves: calls made during the grow wait and then succeed, a handle taken before
 * still works after (same inode numbers), the file written before is intact, and a file larger
 * than the old free space fits. After the server stops, `volume export` is e2fsck -fn clean and
 * holds the files. Refusals come before anything is closed. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { exportImage, formattedVolume } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(180_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-grow-online')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)

async function vol(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

t.test('a served span grows by a disk, and its file system with it, while serving', async (t) => {
  const disks = ['g0.img', 'g1.img'].map((n) => path.join(dir, n)) as [string, string]
  const added = path.join(dir, 'g2.img')
  await formattedVolume('gs', 'span', disks, 9 * MiB)
  const sock = path.join(dir, 'admin.sock')
  // The glob takes the new disk at the next start too.
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=gs,disks=${dir}/g?.img)\n`, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  const before = gen(2 * MiB + 99)
  await c.writeFile('/before.bin', before)
  const handle = await c.resolve('/before.bin')
  const small = await c.statfs()
  t.comment(`before: ${small.tbytes} bytes, ${small.fbytes} free`)

  const usage = await vol(['grow', 'gs', '--admin', sock])
  t.equal(usage.code, 2, 'nothing to grow: a usage error')
  const relative = await adminRequest(sock, { command: 'grow', volume: 'gs', disks: ['g2.img'] })
  t.match(relative, { ok: false, code: 'ADMIN_BAD_ARGUMENT' }, 'a relative path would name the server\'s file')
  const reshape = await adminRequest(sock, { command: 'grow', volume: 'gs', disks: [disks[0]] })
  t.match(reshape, { ok: false, code: 'VOLUME_MEMBER' }, 'a member disk again is refused')

  fs.writeFileSync(added, '')
  fs.truncateSync(added, 9 * MiB)
  // Reads during the grow wait for the new engine, then answer.
  const state = { growing: true }
  let reads = 0
  const reader = (async () => {
    while (state.growing) {
      const got = await c.readFile('/before.bin')
      if (!got.equals(before)) throw new Error('a read during the grow returned other bytes')
      reads++
    }
  })()
  const grow = await vol(['grow', 'gs', added, '--admin', sock]).finally(() => {
    state.growing = false
  })
  await reader
  t.equal(grow.code, 0, grow.err)
  t.equal(grow.out, `volume gs: span grown from ${16 * MiB} to ${24 * MiB} bytes; file system grown from 16384 to 24576 blocks of 1024 bytes (configuration seq 2)\n`)
  t.ok(reads > 0, `${reads} reads during the grow, every one right`)

  const st = await adminRequest(sock, { command: 'status', volume: 'gs' })
  t.match(st, { ok: true, size: 24 * MiB, seq: 2, degraded: false, lastOperation: { kind: 'grow', ok: true } })
  t.equal((st as unknown as { members: unknown[] }).members.length, 3)
  const attr = await c.getattr(handle.fh, { revalidate: true })
  t.equal(attr.size, BigInt(before.length), 'the handle taken before the grow still works')
  t.ok((await c.readFile('/before.bin')).equals(before), 'the file written before, byte-exact')
  const large = await c.statfs()
  t.ok(large.tbytes - small.tbytes >= BigInt(7 * MiB), `the file system is larger: ${small.tbytes} → ${large.tbytes} bytes`)

  // More than the old file system had free.
  const after = gen(Number(small.fbytes) + MiB)
  await c.writeFile('/after.bin', after)
  t.ok((await c.readFile('/after.bin')).equals(after), `${after.length} bytes written and read back, past the old free space`)
  await c.umount()
  await s.server.close()

  const image = path.join(dir, 'out.img')
  await exportImage([...disks, added], image)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `e2fsck -fn clean after the online grow: ${fsck.out}`)
  for (const [name, want] of [['before.bin', before], ['after.bin', after]] as const) {
    const out = path.join(dir, 'dumped')
    debugfs(image, `dump /${name} ${out}`, false)
    t.ok(fs.readFileSync(out).equals(want), `${name} in the exported image`)
  }
})

t.test('a served mirror grows to its larger disks (--size max), and its file system with it', async (t) => {
  const disks = ['m0.img', 'm1.img'].map((n) => path.join(dir, n)) as [string, string]
  await formattedVolume('gm', 'mirror', disks, 9 * MiB)
  const sock = path.join(dir, 'gm.sock')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=gm,disks=${dir}/m?.img)\n`, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  const before = gen(MiB + 7)
  await c.writeFile('/before.bin', before)
  const small = await c.statfs()
  // The image files made larger under the running server, as disks swapped for larger ones.
  for (const d of disks) fs.truncateSync(d, 13 * MiB)
  const r = await adminRequest(sock, { command: 'grow', volume: 'gm', size: 'max' })
  t.match(r, { ok: true, grown: true, before: 8 * MiB, size: 12 * MiB, message: 'mirror grown from 8388608 to 12582912 bytes; file system grown from 8192 to 12288 blocks of 1024 bytes' })
  const again = await adminRequest(sock, { command: 'grow', volume: 'gm', size: 'max' })
  t.match(again, { ok: true, grown: false, message: /^mirror already 12582912 bytes; file system already 12288 blocks/ }, 'a second grow has nothing to do')
  const after = gen(Number(small.fbytes) + MiB)
  await c.writeFile('/after.bin', after)
  t.ok((await c.readFile('/before.bin')).equals(before), 'the file written before')
  t.ok((await c.readFile('/after.bin')).equals(after), 'more than the old free space')
  await c.umount()
  await s.server.close()
  const image = path.join(dir, 'gm.img')
  await exportImage([...disks], image)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `e2fsck -fn clean: ${fsck.out}`)
})
