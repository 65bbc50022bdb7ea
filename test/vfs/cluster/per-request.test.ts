/*
 * Cache mode 'per-request' (vfs/cluster/meta/cache-mode.ts), the mode of
 * engines without LISTEN/NOTIFY: two or more servers on PostgreSQL with the
 * engine forced to CockroachDB and its statement rule on (statement-check.ts
 * refuses pg_notify, NOTIFY and LISTEN as CockroachDB does, and records
 * every refusal: each test ends asserting there was none). Nothing waits for
 * a notification here: what one server committed before a request started,
 * the other sees in that request (latency 0 after the commit).
 */
import t, { type Test } from 'tap'
import { b, mkdir, mkfile, OWNER, readAll, rejectsCode } from '../conformance-helpers.ts'
import { newCluster, dropTemplate, type ServerOptions, roundTripMeter } from './meta-helpers.ts'
import { renameRaceCases } from './rename-race-cases.ts'
import { twoServerRounds } from './two-server-rounds.ts'
import { refused } from './statement-check.ts'
import { cacheModeFromEnv } from '../../../server/cluster-backend.ts'

t.teardown(dropTemplate)

const COCKROACH: ServerOptions = { dialect: 'cockroachdb', cockroachRule: true }

/** Fails the test if any statement was refused since `from` (a notification, or a statement CockroachDB refuses). */
function noneRefused(t: Test, from: number): void {
  t.strictSame(refused.slice(from), [], 'no statement CockroachDB refuses was sent (no pg_notify, no LISTEN)')
}

t.test('close-to-open across two servers without notifications', async t => {
  const from = refused.length
  const c = await newCluster()
  t.teardown(() => c.close())
  const a = (await c.server(COCKROACH)).vfs
  const bv = (await c.server(COCKROACH)).vfs
  t.equal(bv.cacheMode, 'per-request', 'CockroachDB gets the per-request mode')
  const root = a.root()
  await rejectsCode(t, bv.lookup(root, b('x')), 'ENOENT', 'B: no x yet')
  const before = await bv.getattr(root)
  const made = await a.create(root, b('x'), { how: 'guarded', attr: { mode: 0o600 } }, OWNER)
  // No wait: A's reply came after its commit, and B's next request reads the rows.
  const seen = await bv.lookup(root, b('x'))
  t.same(seen.ref, made.ref, 'B finds the file A made, right after A replied')
  t.equal(seen.attr.mode, 0o600)
  const after = await bv.getattr(root)
  t.ok(after.mtime.sec > before.mtime.sec || after.mtime.nsec > before.mtime.nsec, "B sees the root's new mtime")
  t.same((await bv.readdir(root, 0n, 100)).entries.map(e => e.name.toString()), ['.', '..', 'x'])

  // Data: size and contents (slice lists are not kept, so a second write is seen too).
  const f = await mkfile(a, root, 'f')
  t.equal((await bv.getattr(f)).size, 0n)
  await a.write(f, 0n, b('hello'), 'unstable')
  await a.commit(f, 0n, 0)
  t.equal((await bv.getattr(f)).size, 5n, 'B sees the size A committed')
  t.equal(await readAll(bv, f), 'hello', 'and the data (close-to-open across servers)')
  await a.write(f, 5n, b(' world'), 'file_sync')
  t.equal(await readAll(bv, f), 'hello world', 'a FILE_SYNC write on A is read on B at once')
  await a.setattr(f, { size: 2n })
  t.equal(await readAll(bv, f), 'he', 'a truncation on A is read on B at once')
  await bv.setattr(f, { mode: 0o640 })
  t.equal((await a.getattr(f)).mode, 0o640, 'a chmod on B is seen on A')

  // Names: a rename and a removal on one server, seen by the other in its next request.
  await bv.rename(root, b('f'), root, b('g'))
  await rejectsCode(t, a.lookup(root, b('f')), 'ENOENT', 'the old name is gone on A')
  t.equal((await a.lookup(root, b('g'))).ref.id, f.id, 'the new name is found on A')
  await bv.remove(root, b('x'))
  await rejectsCode(t, a.getattr(made.ref), 'ESTALE', 'a file removed on B is stale on A at once')
  const d = await mkdir(bv, root, 'd')
  await a.rmdir(root, b('d'))
  await rejectsCode(t, bv.readdir(d, 0n, 10), 'ESTALE', 'a directory removed on A is stale on B')
  noneRefused(t, from)
})

t.test('two servers changing one file and one directory at once agree with the database after every round', async t => {
  const from = refused.length
  const c = await newCluster()
  t.teardown(() => c.close())
  const A = await c.server(COCKROACH)
  const B = await c.server(COCKROACH)
  const root = A.vfs.root()
  const d = await mkdir(A.vfs, root, 'd')
  const f = await mkfile(A.vfs, d, 'f')
  const rounds = 30
  // No waiting for anything: the changes committed before the questions were asked.
  const stale = await twoServerRounds(t, A, B, d, f, rounds, () => async () => {})
  t.equal(stale, 0, `0 stale answers in ${rounds} rounds of simultaneous changes on two servers`)
  noneRefused(t, from)
})

t.test('round trips per operation without notifications', async t => {
  const from = refused.length
  const c = await newCluster()
  t.teardown(() => c.close())
  const { vfs, db } = await c.server(COCKROACH)
  const root = vfs.root()
  await mkfile(vfs, root, 'warm')
  const d = await mkdir(vfs, root, 'd')
  const f = await mkfile(vfs, d, 'f')
  await vfs.write(f, 0n, b('data'), 'file_sync')
  const { rows, measure } = roundTripMeter(vfs, db)
  // Reading the row costs the round trip a version check would, and sees the data half's
  // size and mtime updates too: every answer is read, none cached.
  t.equal(await measure('GETATTR', () => vfs.getattr(f)), 1, 'GETATTR: 1 (the row)')
  t.equal(await measure('GETATTR again', () => vfs.getattr(f)), 1, 'GETATTR again: 1 (nothing cached)')
  t.equal(await measure('LOOKUP', () => vfs.lookup(d, b('f'))), 1, 'LOOKUP: 1 (directory, entry and child in one join)')
  t.equal(await measure('LOOKUP ENOENT', () => vfs.lookup(d, b('none')).catch(() => null)), 1)
  t.equal(await measure('LOOKUP ..', () => vfs.lookup(d, b('..'))), 2, 'LOOKUP "..": the directory, then its parent')
  t.equal(await measure('READDIR (one page)', () => vfs.readdir(d, 0n, 100)), 1, 'READDIR: the directory and the page in one query')
  t.equal(await measure('READ (4 bytes)', () => vfs.read(f, 0n, 4)), 3, 'READ: the node, the chunk row, the block (data=postgres)')
  t.equal(await measure('SETATTR mode', () => vfs.setattr(f, { mode: 0o640 })), 1, 'SETATTR without a size: one statement (it finds a stale handle itself)')
  t.equal(await measure('WRITE unstable', () => vfs.write(f, 4n, b('more'), 'unstable')), 1, 'WRITE unstable: the node (its attributes for the reply)')
  await measure('COMMIT', () => vfs.commit(f, 0n, 0))
  await measure('WRITE file_sync', () => vfs.write(f, 0n, b('DATA'), 'file_sync'))
  t.equal(await measure('CREATE', () => vfs.create(d, b('new'), { how: 'guarded', attr: {} }, OWNER)), 6)
  t.equal(await measure('GETATTR after CREATE here', () => vfs.getattr(f)), 1, 'own changes are not cached either')
  await measure('RENAME', () => vfs.rename(d, b('new'), d, b('new2')))
  await measure('REMOVE', () => vfs.remove(d, b('new2')))
  t.comment('| operation | round trips (per-request) |')
  t.comment('|---|---|')
  for (const [op, n] of rows) t.comment(`| ${op} | ${n} |`)
  noneRefused(t, from)
})

t.test('rename races without notifications', async t => {
  const from = refused.length
  renameRaceCases(t, COCKROACH)
  // Subtests run in order: this one after both races.
  t.test('nothing refused', async t => { noneRefused(t, from) })
})

t.test('the mode is forceable, and a notification under the rule fails the open', async t => {
  const from = refused.length
  const c = await newCluster()
  t.teardown(() => c.close())
  // PostgreSQL without its feed: the step-by-step statements, nothing sent, nothing cached.
  const { vfs, db } = await c.server({ cacheMode: 'per-request', cockroachRule: true })
  t.equal(vfs.dialect, 'postgresql')
  t.equal(vfs.cacheMode, 'per-request')
  const f = await mkfile(vfs, vfs.root(), 'f')
  const rt = db.stats().roundTrips
  await vfs.getattr(f)
  t.equal(db.stats().roundTrips - rt, 1, 'GETATTR reads the row')
  noneRefused(t, from)
  // CockroachDB told to notify: its LISTEN is refused, as CockroachDB would refuse it.
  await t.rejects(c.server({ ...COCKROACH, cacheMode: 'notify' }), { code: '0A000', message: /LISTEN/ })
  t.equal(refused.length, from + 1, 'the refusal was recorded')
  t.strictSame(cacheModeFromEnv({}), {})
  t.strictSame(cacheModeFromEnv({ TSNFS_CLUSTER_CACHE: 'notify' }), { cacheMode: 'notify' })
  t.throws(() => cacheModeFromEnv({ TSNFS_CLUSTER_CACHE: 'sometimes' }), /TSNFS_CLUSTER_CACHE needs notify or per-request/)
})
