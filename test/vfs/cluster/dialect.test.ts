/*
 * The engine dialect (vfs/cluster/sql.ts): detected from `SELECT version()`;
 * on CockroachDB and YugabyteDB the changing operations run as single-table
 * statements in one transaction. Here on PostgreSQL with the dialect forced
 * and CockroachDB's multiple-modification rule applied to every statement
 * (statement-check.ts): round trips, a race for one name between two
 * servers, and the retry codes CockroachDB restarts with.
 */
import t from 'tap'
import { b, mkdir, mkfile, OWNER, rejectsCode } from '../conformance-helpers.ts'
import { dialectOf, isRetryable } from '../../../vfs/cluster/sql.ts'
import { newCluster, dropTemplate } from './meta-helpers.ts'
import { multiModified } from './statement-check.ts'

t.teardown(dropTemplate)

t.test('dialect from version()', async t => {
  t.equal(dialectOf('CockroachDB CCL v23.2.4 (x86_64-pc-linux-gnu, built 2024/04/01, go1.21.8)'), 'cockroachdb')
  t.equal(dialectOf('PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64-pc-linux-gnu, compiled by clang'), 'yugabytedb')
  t.equal(dialectOf('PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu'), 'postgresql')
  const c = await newCluster()
  t.teardown(() => c.close())
  const s = await c.server()
  t.equal(s.vfs.dialect, 'postgresql', 'this database is detected as PostgreSQL')
})

t.test('the rule check: what CockroachDB refuses and allows', async t => {
  t.strictSame(multiModified('WITH a AS (UPDATE tsnfs_node SET x = 1), b AS (INSERT INTO tsnfs_node VALUES (1)) SELECT 1'), ['tsnfs_node'])
  t.strictSame(multiModified('WITH a AS (INSERT INTO tsnfs_edge VALUES (1)), b AS (INSERT INTO tsnfs_edge VALUES (2)) SELECT 1'), [], 'plain INSERTs are allowed')
  t.strictSame(multiModified('SELECT 1 FROM tsnfs_node WHERE inode = $1 FOR UPDATE'), [])
  t.strictSame(multiModified('INSERT INTO tsnfs_chunk VALUES (1) ON CONFLICT (inode, idx) DO UPDATE SET slices = EXCLUDED.slices'), [], 'one upsert')
  // PostgreSQL's one-statement CREATE modifies tsnfs_node twice: refused under the rule
  // (notifications allowed: that form carries its pg_notify, and this checks the other rule).
  const c = await newCluster()
  t.teardown(() => c.close())
  const pgForm = (await c.server({ dialect: 'postgresql', cockroachRule: true, allowNotify: true })).vfs
  await t.rejects(pgForm.create(pgForm.root(), b('x'), { how: 'guarded', attr: {} }, OWNER), { code: '0A000' }, 'the CTE form fails the rule')
})

t.test('CockroachDB restarts are retried; an unknown outcome is not', async t => {
  const restart = Object.assign(new Error('restart transaction: TransactionRetryWithProtoRefreshError: WriteTooOldError'), { code: '40001' })
  t.equal(isRetryable(restart), true)
  t.equal(isRetryable(Object.assign(new Error('result is ambiguous'), { code: '40003' })), false)
  t.equal(isRetryable(Object.assign(new Error('deadlock detected'), { code: '40P01' })), true)
})

t.test('round trips and a race, step by step', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const { vfs, db } = await c.server({ dialect: 'cockroachdb', cockroachRule: true })
  const other = (await c.server({ dialect: 'cockroachdb', cockroachRule: true })).vfs
  const root = vfs.root()
  await mkfile(vfs, root, 'warm')
  const d = await mkdir(vfs, root, 'd')
  const rows: [string, number][] = []
  const measure = async (op: string, fn: () => Promise<unknown>): Promise<number> => {
    const before = db.stats().roundTrips
    await fn()
    const n = db.stats().roundTrips - before
    rows.push([op, n])
    return n
  }
  t.equal(await measure('CREATE', () => vfs.create(d, b('f'), { how: 'guarded', attr: {} }, OWNER)), 6, 'CREATE: BEGIN, check, directory, entry, node, COMMIT')
  await measure('MKDIR', () => vfs.mkdir(d, b('sub'), {}, OWNER))
  const f = (await vfs.lookup(d, b('f'))).ref
  await measure('LINK', () => vfs.link(f, d, b('f2')))
  await measure('RENAME', () => vfs.rename(d, b('f2'), d, b('f3')))
  await measure('REMOVE', () => vfs.remove(d, b('f3')))
  await measure('RMDIR', () => vfs.rmdir(d, b('sub')))
  t.comment(`| operation | round trips (step by step) |\n|---|---|\n${rows.map(([op, n]) => `| ${op} | ${n} |`).join('\n')}`)
  t.equal((await vfs.getattr(f)).nlink, 1, 'link, rename, remove left one link')
  await rejectsCode(t, vfs.lookup(d, b('sub')), 'ENOENT')

  // Two servers make one name at once: one wins, the other is EEXIST; the directory has it once.
  const made = await Promise.allSettled([
    vfs.create(d, b('race'), { how: 'guarded', attr: {} }, OWNER),
    other.create(d, b('race'), { how: 'guarded', attr: {} }, OWNER),
  ])
  t.equal(made.filter((r) => r.status === 'fulfilled').length, 1, 'one create wins')
  const lost = made.find((r) => r.status === 'rejected')
  t.match(lost?.reason, { code: 'EEXIST' }, 'the other is EEXIST')
  const names = (await other.readdir(d, 0n, 100)).entries.map((e) => e.name.toString()).filter((n) => n === 'race')
  t.strictSame(names, ['race'])
  await Promise.all([vfs.flushCounters(), other.flushCounters()])
  const st = await other.fsstat(root)
  t.equal(st.totalFiles - st.freeFiles, 5n, 'root, warm, d, f, race: the counters follow the step-by-step path too')
})
