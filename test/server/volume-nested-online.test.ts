/*
 * fail and replace of members inside nested layers, online through a real server's admin socket
 * and the `tsnfs volume` CLI:
 *
 *   - a mirror of two stripes: `fail ns 0.1` (leg 0, stripe member 1) takes the whole leg out of
 *     service, as md does with RAID-1 over RAID-0, and says so; a second fail in the other leg is
 *     refused; `replace ns 0.1 NEW` rebuilds leg 0 whole while a client writes. The new leg alone
 *     then holds an e2fsck-clean file system with every file.
 *   - a RAID-5 of partitions (at 64 KiB into each member): `fail` and `replace` of member 2 by its
 *     layout address; the two other members without the first one hold the file system.
 *
 * TSNFS_SEED repeats a run.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../../vfs/engine/mkfs/mkfs.ts'
import type { LayoutNode } from '../../vfs/volume/config.ts'
import { createVolume, updateConfig } from '../../vfs/volume/create-volume.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { exportImage } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(180_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-nested-online')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)
const disk = (member: string): LayoutNode => ({ kind: 'disk', member })

/** Image files made volume `name` with the layout `root` builds from the member uuids, with the engine's file system on it. */
async function nestedVolume(name: string, paths: readonly string[], bytes: number, root: (u: readonly string[]) => LayoutNode): Promise<void> {
  const open = []
  for (const p of paths) open.push({ path: p, dev: await ImageFile.create(p, bytes) })
  try {
    const vol = await createVolume(name, 'span', open)
    await updateConfig(vol, (c) => ({ ...c, root: root(c.members.map((m) => m.uuid)), flags: { ...c.flags, intentBitmap: true } }))
  } finally {
    for (const d of open) await d.dev.close()
  }
  const v = await openVolume(paths)
  try {
    await makeFileSystem(v.device, { zeroed: true })
  } finally {
    await v.close()
  }
}

async function vol(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

interface StatusView { degraded: boolean; failed: boolean; members: { index: number; state: string; path: string | null }[] }

/** Exports the volume `paths` assemble (degraded as they may be) and checks it: e2fsck clean, and each file byte-exact. */
async function checkImage(t: Test, paths: readonly string[], files: Readonly<Record<string, Buffer>>, what: string): Promise<void> {
  const image = path.join(dir, `check-${Date.now()}.img`)
  await exportImage([...paths], image)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `${what}: e2fsck -fn clean: ${fsck.out}`)
  for (const [name, want] of Object.entries(files)) {
    const out = path.join(dir, 'dumped')
    debugfs(image, `dump /${name} ${out}`, false)
    t.ok(fs.readFileSync(out).equals(want), `${what}: ${name} byte-exact`)
  }
  fs.rmSync(image)
}

t.test('a mirror of stripes: fail 0.1 takes leg 0 out; replace 0.1 rebuilds the leg while serving', async (t) => {
  const disks = ['s0.img', 's1.img', 's2.img', 's3.img'].map((n) => path.join(dir, n)) as [string, string, string, string]
  await nestedVolume('ns', disks, 9 * MiB, (u) => ({
    kind: 'mirror',
    children: [
      { kind: 'stripe', children: [disk(u[0] ?? ''), disk(u[1] ?? '')] },
      { kind: 'stripe', children: [disk(u[2] ?? ''), disk(u[3] ?? '')] },
    ],
  }))
  const sock = path.join(dir, 'ns.sock')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=ns,disks=${dir}/s?.img)\n`, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  const files: Record<string, Buffer> = { 'a.bin': gen(2 * MiB + 11) }
  await c.writeFile('/a.bin', files['a.bin'] as Buffer)

  const failed = await vol(['fail', 'ns', '0.1', '--admin', sock])
  t.equal(failed.code, 0, failed.err)
  t.match(failed.out, /^volume ns: member 1 \([0-9a-f]{32}\) marked failed, configuration seq 3\n {2}out of service with it: mirror\[0\], the stripe of members 0, 1 \(a stripe cannot lose one disk: the whole mirror child goes\)\n$/)
  const st = (await adminRequest(sock, { command: 'status', volume: 'ns' })) as unknown as StatusView
  t.match(st, { degraded: true, failed: false })
  t.same(st.members.map((m) => m.state), ['ok', 'failed', 'ok', 'ok'])
  t.ok((await c.readFile('/a.bin')).equals(files['a.bin'] as Buffer), 'degraded: the file reads from leg 1')
  files['b.bin'] = gen(MiB + 3)
  await c.writeFile('/b.bin', files['b.bin'])

  const refused = await adminRequest(sock, { command: 'fail', volume: 'ns', member: '1.0' })
  t.strictSame(refused, { ok: false, code: 'VOLUME_FAILED', message: 'volume ns already runs without mirror child 0 (members 0, 1); failing member 2 too would lose it' }, 'the last whole leg cannot go')
  const notDisk = await adminRequest(sock, { command: 'fail', volume: 'ns', member: '1' })
  t.match(notDisk, { ok: false, code: 'VOLUME_MEMBER' }, '"1" as a string is an address: a stripe, not a disk')
  const nothing = await adminRequest(sock, { command: 'fail', volume: 'ns', member: '0.5' })
  t.match(nothing, { ok: false, code: 'VOLUME_MEMBER', message: /nothing at 0\.5: a stripe has 2 children/ })

  // The rebuild copies the whole 16 MiB leg at 8 MiB/s while the client writes.
  const fresh = path.join(dir, 's1-new.img')
  const during: Buffer[] = []
  const state = { rebuilding: true }
  const writer = (async () => {
    // Paced, and at most 40 files (6 MiB): the file system has 16 MiB.
    for (let i = 0; (state.rebuilding && i < 40) || i < 2; i++) {
      const b = gen(150_000 + i)
      during.push(b)
      await c.writeFile(`/during-${i}.bin`, b)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  const rep = await vol(['replace', 'ns', '0.1', fresh, '--size', '9M', '--rate', String(8 * MiB), '--admin', sock]).finally(() => {
    state.rebuilding = false
  })
  await writer
  t.equal(rep.code, 0, rep.err)
  t.match(rep.out, /^volume ns: member 1 rebuilt onto \S+s1-new\.img \([0-9a-f]{32}\), configuration seq 5\n {2}rebuilt whole: mirror\[0\]\n$/)
  t.match(rep.err, /: 100% \(/, 'progress to the end')
  const end = (await adminRequest(sock, { command: 'status', volume: 'ns' })) as unknown as StatusView
  t.match(end, { degraded: false, failed: false })
  t.same(end.members.map((m) => [m.state, m.path]), [['ok', disks[0]], ['ok', fresh], ['ok', disks[2]], ['ok', disks[3]]])
  for (const [i, b] of during.entries()) files[`during-${i}.bin`] = b
  const wrong = []
  for (const [name, want] of Object.entries(files)) if (!(await c.readFile(`/${name}`)).equals(want)) wrong.push(name)
  t.same(wrong, [], `${Object.keys(files).length} files read back, ${during.length} of them written during the rebuild`)
  await c.umount()
  await s.server.close()

  // Leg 0 alone (its old disk and the new one): the rebuilt leg holds everything.
  await checkImage(t, [disks[0], fresh], files, 'the rebuilt leg alone')
})

t.test('a RAID-5 of partitions: fail and replace member 2 by its address', async (t) => {
  const disks = ['p0.img', 'p1.img', 'p2.img'].map((n) => path.join(dir, n)) as [string, string, string]
  const part = (u: string): LayoutNode => ({ kind: 'partition', offset: 64 * 1024, size: 6 * MiB, child: disk(u) })
  await nestedVolume('np', disks, 8 * MiB, (u) => ({ kind: 'raid5', children: u.map(part) }))
  const sock = path.join(dir, 'np.sock')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=np,disks=${dir}/p?.img)\n`, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  const files: Record<string, Buffer> = { 'a.bin': gen(3 * MiB + 5) }
  await c.writeFile('/a.bin', files['a.bin'] as Buffer)

  const failed = await adminRequest(sock, { command: 'fail', volume: 'np', member: 2 })
  t.match(failed, { ok: true, member: 2, seq: 3, whole: false, lost: 'raid5[2] (member 2)' }, 'one partition\'s disk: only it goes')
  files['b.bin'] = gen(MiB + 1)
  await c.writeFile('/b.bin', files['b.bin'])
  const fresh = path.join(dir, 'p2-new.img')
  const rep = await vol(['replace', 'np', '2', fresh, '--size', '8M', '--admin', sock])
  t.equal(rep.code, 0, rep.err)
  t.match(rep.out, /^volume np: member 2 rebuilt onto \S+p2-new\.img \([0-9a-f]{32}\), configuration seq \d+\n$/)
  const end = (await adminRequest(sock, { command: 'status', volume: 'np' })) as unknown as StatusView
  t.match(end, { degraded: false })
  t.same(end.members.map((m) => m.state), ['ok', 'ok', 'ok'])
  const scrub = await adminRequest(sock, { command: 'scrub', volume: 'np' })
  t.match(scrub, { ok: true, mismatches: 0 }, 'no parity mismatch after the rebuild')
  await c.umount()
  await s.server.close()

  // Without member 0, the rebuilt member is needed for every stripe.
  await checkImage(t, [disks[1], fresh], files, 'members 1 and the new 2')
})
