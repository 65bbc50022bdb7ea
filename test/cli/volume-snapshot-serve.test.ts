/*
 * Snapshots of a served mirror volume, end to end: `tsnfs volume create --snapshot-store`, a
 * client writes files, `tsnfs volume snapshot create` (offline, between two runs of the server),
 * the client changes the files, and `.snapshot/SNAP/` reads the old bytes through NFS while
 * writes there get NFS3ERR_ROFS. Then a snapshot taken online (the function the admin channel
 * calls, with the engine frozen around it) and its delete (ESTALE for its handles); then the same
 * through the admin socket: `tsnfs volume snapshot create|list|delete NAME SNAP --admin SOCK`.
 */
import t from 'tap'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { BACKENDS } from '../../server/backends.ts'
import type { BackendFactory } from '../../server/backends.ts'
import { volumeSnapshotsOf } from '../../server/volume-snapshots.ts'
import type { Vfs } from '../../vfs/types.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'

t.setTimeout(120_000)
const dir = scratch(t, 'volume-snapshot-serve')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const bytes = seededBytes(seed)
const oldA = bytes(300_000)
const oldB = bytes(70_000)
const disks = ['m0.img', 'm1.img'].map((n) => path.join(dir, n))
const line = `/data *(rw,insecure,no_root_squash,backend=engine,volume=snapvol,disks=${dir}/m*.img)\n`

t.before(async () => {
  const made = await tsnfsRaw(['volume', 'create', 'snapvol', '--level', 'mirror', '--size', '48M', '--snapshot-store', '12M', ...disks])
  if (made.code !== 0) throw new Error(made.stderr)
  const mkfs = await tsnfsRaw(['volume', 'mkfs', ...disks])
  if (mkfs.code !== 0) throw new Error(mkfs.stderr)
})

t.test('offline snapshot between two runs: .snapshot/before reads the old bytes, refuses writes', async (t) => {
  const s1 = await startServer(t, line)
  const c1 = await NfsClient.mount(s1.url('/data'))
  await c1.writeFile('/a.bin', oldA)
  await c1.mkdir('/d')
  await c1.writeFile('/d/b.bin', oldB)
  await c1.umount()
  await s1.server.close()

  const made = await tsnfsRaw(['volume', 'snapshot', 'create', ...disks, '--name', 'before'])
  t.equal(made.code, 0, made.stderr)
  t.match(made.stdout, /^volume snapvol: snapshot before \(id 0\) created$/m)
  const listed = await tsnfsRaw(['volume', 'snapshot', 'list', ...disks])
  t.match(listed.stdout, /^before\tlive\t/m, 'list shows it')
  const st = await tsnfsRaw(['volume', 'status', ...disks])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout.toString(), /^ {2}snapshot store: 12582912 bytes, \d+ of \d+ bytes used, 1 snapshot\n/m, 'offline status shows the store and its snapshot')

  const s2 = await startServer(t, line)
  const c = await NfsClient.mount(s2.url('/data'))
  const newA = bytes(123_456)
  await c.writeFile('/a.bin', newA)
  await c.unlink('/d/b.bin')
  t.ok((await c.readFile('/a.bin')).equals(newA), 'the live file has the new bytes')
  t.ok((await c.readFile('/.snapshot/before/a.bin')).equals(oldA), '.snapshot/before/a.bin reads the old bytes')
  t.ok((await c.readFile('/.snapshot/before/d/b.bin')).equals(oldB), 'a file removed live is still in the snapshot')
  t.notOk((await c.readdir('/')).includes('.snapshot'), 'READDIR of the root hides .snapshot')
  t.strictSame((await c.readdir('/.snapshot')).filter((n) => n !== '.' && n !== '..'), ['before'], 'READDIR of .snapshot lists the snapshot')
  await t.rejects(c.writeFile('/.snapshot/before/a.bin', Buffer.from('x')), { code: 'NFS3ERR_ROFS' }, 'a write in the snapshot is ROFS')
  await t.rejects(c.writeFile('/.snapshot/before/new.bin', Buffer.from('x')), { code: 'NFS3ERR_ROFS' }, 'a create in the snapshot is ROFS')
  await t.rejects(c.unlink('/.snapshot/before/a.bin'), { code: 'NFS3ERR_ROFS' }, 'a remove in the snapshot is ROFS')
  const inSnap = await c.stat('/.snapshot/before/a.bin')
  const live = await c.stat('/a.bin')
  t.equal(inSnap.fileid, (1n << 40n) | live.fileid, 'the snapshot file has its own fileid: (snapshot id + 1) << 40 | inode')
  await c.umount()
  await s2.server.close()
})

t.test('online through the admin socket: tsnfs volume snapshot create|list|delete NAME SNAP', async (t) => {
  const sock = path.join(dir, 'admin.sock')
  const s = await startServer(t, line, { admin: sock, metrics: { host: '127.0.0.1', port: 0 } })
  const c = await NfsClient.mount(s.url('/data'))
  const before = await c.readFile('/a.bin')
  const made = await tsnfsRaw(['volume', 'snapshot', 'create', 'snapvol', 'nightly', '--admin', sock])
  t.equal(made.code, 0, made.stderr)
  t.match(made.stdout.toString(), /^volume snapvol: snapshot nightly \(id \d+\) created$/m)
  await c.writeFile('/a.bin', Buffer.from('changed after nightly'))
  t.ok((await c.readFile('/.snapshot/nightly/a.bin')).equals(before), '.snapshot/nightly holds the bytes at the online create')
  const listed = await tsnfsRaw(['volume', 'snapshot', 'list', 'snapvol', '--json', '--admin', sock])
  t.equal(listed.code, 0, listed.stderr)
  t.ok((JSON.parse(listed.stdout.toString()) as { name: string; state: string }[]).some((x) => x.name === 'nightly' && x.state === 'live'), 'listed live')
  const st = await tsnfsRaw(['volume', 'status', 'snapvol', '--json', '--admin', sock])
  t.equal(st.code, 0, st.stderr)
  const store = (JSON.parse(st.stdout.toString()) as { snapshotStore: { size: number; chunkSize: number; bytes: number; used: number; snapshots: number } }).snapshotStore
  t.match(store, { size: 12582912, snapshots: 2, deleting: 0, invalid: 0 }, 'online status: the store and its two snapshots')
  t.ok(store.used >= store.chunkSize && store.used < store.bytes && store.bytes < store.size, `copies take ${store.used} of ${store.bytes} bytes`)
  const text = await tsnfsRaw(['volume', 'status', 'snapvol', '--admin', sock])
  t.match(text.stdout.toString(), `  snapshot store: 12582912 bytes, ${store.used} of ${store.bytes} bytes used, 2 snapshots\n`)
  const port = s.server.metricsPort
  if (port === null) throw new Error('no metrics endpoint')
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.match(metrics, new RegExp(`^tsnfs_volume_snapshot_store_bytes\\{volume="snapvol"\\} ${store.bytes}$`, 'm'))
  t.match(metrics, /^tsnfs_volume_snapshot_store_used_bytes\{volume="snapvol"\} [1-9]\d*$/m)
  t.match(metrics, /^tsnfs_volume_snapshots\{volume="snapvol"\} 2$/m)
  const bad = await adminRequest(sock, { command: 'snapshot-create', volume: 'snapvol', snapshot: 'a/b' })
  t.match(bad, { ok: false, code: 'VOLUME_SNAPSHOT' }, 'a name with "/" cannot be a directory under .snapshot')
  const dup = await tsnfsRaw(['volume', 'snapshot', 'create', 'snapvol', 'nightly', '--admin', sock])
  t.equal(dup.code, 8, 'a name taken is refused')
  t.match(dup.stderr, /VOLUME_SNAPSHOT/)
  const none = await adminRequest(sock, { command: 'snapshot-list', volume: 'nope' })
  t.match(none, { ok: false, code: 'ADMIN_NO_VOLUME' })
  const usage = await tsnfsRaw(['volume', 'snapshot', 'create', 'snapvol', '--admin', sock])
  t.equal(usage.code, 2, 'create without SNAP is a usage error')
  const gone = await tsnfsRaw(['volume', 'snapshot', 'delete', 'snapvol', 'nightly', '--admin', sock])
  t.equal(gone.code, 0, gone.stderr)
  await t.rejects(c.readFile('/.snapshot/nightly/a.bin'), { code: 'NFS3ERR_STALE' }, 'deleted: the handles the client holds are stale')
  t.notOk((await c.readdir('/.snapshot')).includes('nightly'), 'and .snapshot no longer lists it')
  await c.umount()
  await s.server.close()
})

t.test('online snapshot (the admin channel function) and delete: ESTALE for its handles afterwards', async (t) => {
  let served: Vfs | undefined
  const engine = BACKENDS.get('engine') as BackendFactory
  const backends = new Map(BACKENDS)
  backends.set('engine', async (exp, ctx) => (served = await engine(exp, ctx)))
  const s = await startServer(t, line.replace('no_root_squash,', 'no_root_squash,snapdir=visible,'), { backends })
  const c = await NfsClient.mount(s.url('/data'))
  t.ok((await c.readdir('/')).includes('.snapshot'), 'snapdir=visible lists .snapshot in the root')
  const ops = served === undefined ? undefined : volumeSnapshotsOf(served)
  if (ops === undefined) throw new Error('the export has no snapshot operations')
  const writers = Array.from({ length: 4 }, (_, i) => c.writeFile(`/w${i}.bin`, bytes(50_000 + i)))
  const made = await ops.create('online')
  await Promise.all(writers)
  t.equal(made.name, 'online')
  t.strictSame(ops.list().map((x) => [x.name, x.state]), [['before', 'live'], ['online', 'live']])
  const atSnap = await c.readFile('/a.bin')
  await c.writeFile('/a.bin', Buffer.from('after the online snapshot'))
  t.ok((await c.readFile('/.snapshot/online/a.bin')).equals(atSnap), 'the online snapshot holds the bytes as they were')
  const handle = await c.resolve('/.snapshot/online/a.bin')
  await ops.delete('online')
  await t.rejects(c.getattr(handle.fh, { revalidate: true }), { code: 'NFS3ERR_STALE' }, 'a deleted snapshot\'s handle is stale')
  t.strictSame((await c.readdir('/.snapshot')).filter((n) => n !== '.' && n !== '..'), ['before'])
  await c.umount()
  await s.server.close()

  // The repairs find the mirror under the origin: `volume fail` works on a volume with a store.
  const failed = await tsnfsRaw(['volume', 'fail', ...disks, '--member', '1'])
  t.equal(failed.code, 0, failed.stderr)
  const status = await tsnfsRaw(['volume', 'status', disks[0] ?? ''])
  t.equal(status.code, 1, 'degraded after the fail')
})
