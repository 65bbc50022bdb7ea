/*
 * Close-to-open across two servers in cache mode 'notify' while B's change
 * feed is slow (PgDb.holdFeed holds what its LISTEN connection receives): a
 * change A acknowledged before B's request arrived is in B's answer, though
 * B has not heard the notification when the request arrives. Each case
 * asserts that it has not (the window is open), so the answer can only come
 * from the barrier (ClusterVfs #current, Feed.barrier).
 */
import t from 'tap'
import type { Test } from 'tap'
import { b, mkfile, OWNER, readAll, rejectsCode } from '../conformance-helpers.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { newCluster, dropTemplate, type Server } from './meta-helpers.ts'

t.teardown(dropTemplate)

/** Far longer than a round trip here: the notification is surely still held when B is asked. */
const HOLD_MS = 500

/** Servers A and B, B with a slow feed from `hold()` on; `heard(i)` whether B has heard of inode i since `reset()`. */
async function twoServers(t: Test): Promise<{ a: Server; bs: Server; heard: (i: bigint) => boolean; reset: () => void }> {
  const c = await newCluster()
  t.teardown(() => c.close())
  let seen = new Set<bigint | 'all'>()
  const a = await c.server()
  const bs = await c.server({ onRemoteChange: (inodes) => { for (const i of inodes === 'all' ? ['all' as const] : inodes) seen.add(i) } })
  return { a, bs, heard: (i) => seen.has(i) || seen.has('all'), reset: () => { seen = new Set() } }
}

/** Waits until B has settled everything announced so far (no hold), then holds its feed. */
async function settleThenHold(bs: Server, reset: () => void): Promise<void> {
  bs.db.holdFeed(0)
  await bs.vfs.getattr(bs.vfs.root())
  reset()
  bs.db.holdFeed(HOLD_MS)
}

t.test("A's write and commit: B's next GETATTR and READ see them", async (t) => {
  const { a, bs, heard, reset } = await twoServers(t)
  const f = await mkfile(a.vfs, a.vfs.root(), 'f')
  t.equal((await bs.vfs.getattr(f)).size, 0n, 'B caches f at size 0')
  t.equal(await readAll(bs.vfs, f), '')
  await settleThenHold(bs, reset)
  await a.vfs.write(f, 0n, b('hello'), 'unstable')
  await a.vfs.commit(f, 0n, 0)
  t.notOk(heard(f.id), 'B has not heard of the commit yet')
  const started = performance.now()
  const attr = await bs.vfs.getattr(f)
  t.equal(attr.size, 5n, 'GETATTR on B: the size A committed')
  t.ok(performance.now() - started >= HOLD_MS - 50, 'B waited for its slow feed')
  t.ok(heard(f.id), 'the notification was heard before the answer')
  t.equal(await readAll(bs.vfs, f), 'hello', 'READ on B: the data A committed')

  // A FILE_SYNC write, and a truncation, each read on B at once.
  reset()
  await a.vfs.write(f, 5n, b(' world'), 'file_sync')
  t.notOk(heard(f.id), 'B has not heard of the FILE_SYNC write yet')
  t.equal(await readAll(bs.vfs, f), 'hello world', 'READ on B after a FILE_SYNC write on A')
  reset()
  await a.vfs.setattr(f, { size: 2n })
  t.notOk(heard(f.id), 'B has not heard of the truncation yet')
  const r = await bs.vfs.read(f, 0n, 100)
  t.equal(r.data.toString(), 'he', 'READ on B after a truncation on A')
  t.equal(r.attr.size, 2n)
})

t.test("A's chmod, remove, rename, create: B's GETATTR, LOOKUP, READDIR see them", async (t) => {
  const { a, bs, heard, reset } = await twoServers(t)
  const root = a.vfs.root()
  const f = await mkfile(a.vfs, root, 'f')
  const g = await mkfile(a.vfs, root, 'g')
  /** B looks up (caches) each name, then its feed is held. */
  const cacheOnB = async (...names: string[]): Promise<void> => {
    bs.db.holdFeed(0)
    for (const n of names) await bs.vfs.lookup(root, b(n))
    await settleThenHold(bs, reset)
  }

  await cacheOnB('f')
  t.equal((await bs.vfs.getattr(f)).mode, 0o644)
  await a.vfs.setattr(f, { mode: 0o600 })
  t.notOk(heard(f.id), 'B has not heard of the chmod yet')
  t.equal((await bs.vfs.getattr(f)).mode, 0o600, 'GETATTR on B: the mode A set')

  await cacheOnB('g')
  await a.vfs.remove(root, b('g'))
  t.notOk(heard(root.id), 'B has not heard of the removal yet')
  await rejectsCode(t, bs.vfs.lookup(root, b('g')), 'ENOENT', 'LOOKUP on B: g is gone')
  await rejectsCode(t, bs.vfs.getattr(g), 'ESTALE', 'GETATTR on B: the removed file is stale')

  await cacheOnB('f')
  await a.vfs.rename(root, b('f'), root, b('f2'))
  t.notOk(heard(root.id), 'B has not heard of the rename yet')
  await rejectsCode(t, bs.vfs.lookup(root, b('f')), 'ENOENT', 'LOOKUP on B: the old name is gone')

  await cacheOnB('f2')
  const before = await bs.vfs.getattr(root)
  const h = await a.vfs.create(root, b('h'), { how: 'guarded', attr: {} }, OWNER)
  t.notOk(heard(root.id), 'B has not heard of the create yet')
  t.notSame((await bs.vfs.getattr(root)).mtime, before.mtime, 'GETATTR on B: the directory changed')
  t.same((await bs.vfs.lookup(root, b('h'))).ref, h.ref, 'LOOKUP on B finds what A created')
  t.same((await bs.vfs.readdir(root, 0n, 100)).entries.map((e) => e.name.toString()).sort(), ['.', '..', 'f2', 'h'], 'READDIR on B')
})

t.test('B serves from its cache without waiting when its feed is quick, and shares barriers', async (t) => {
  const { a, bs } = await twoServers(t)
  const f: FileRef = await mkfile(a.vfs, a.vfs.root(), 'f')
  await bs.vfs.getattr(f)
  const rt = bs.db.stats().roundTrips
  const barriers = bs.db.stats().barriers
  const all = await Promise.all(Array.from({ length: 50 }, () => bs.vfs.getattr(f)))
  t.equal(all.length, 50)
  t.equal(bs.db.stats().roundTrips - rt, 0, '50 GETATTRs of a cached node: no statement on the pool')
  t.equal(bs.db.stats().barriers - barriers, 2, 'and two barriers: the first one and the one the other 49 shared')

  // A node B has not cached is read from the database, which is current: no barrier.
  const g = await mkfile(a.vfs, a.vfs.root(), 'g')
  const before = bs.db.stats()
  t.equal((await bs.vfs.getattr(g)).fileid, g.id)
  t.equal(bs.db.stats().roundTrips - before.roundTrips, 1, 'an uncached GETATTR: one statement')
  t.equal(bs.db.stats().barriers - before.barriers, 0, 'and no barrier')
})
