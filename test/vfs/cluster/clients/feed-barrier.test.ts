/*
 * Feed.barrier on the shared PostgreSQL: a notification committed before
 * barrier() was called has reached onPayload when it resolves, even when the
 * LISTEN connection is slow (PgDb.holdFeed holds its incoming bytes); callers
 * share rounds, a caller during a round waits for the next; a feed that is
 * down answers false.
 */
import t from 'tap'
import type { Test } from 'tap'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { testDatabase } from '../../../helpers/postgres.ts'

const url = await testDatabase(t)
/** Far longer than a round trip here, so a held notification is still held when the test looks. */
const HOLD_MS = 500

async function listening(t: Test): Promise<{ db: PgDb; got: string[]; lost: Error[]; feed: Awaited<ReturnType<PgDb['listen']>> }> {
  const db = new PgDb({ url })
  t.teardown(() => db.close())
  const got: string[] = []
  const lost: Error[] = []
  const feed = await db.listen('tsnfs_barrier', (p) => { got.push(p) }, (e) => { lost.push(e) })
  t.teardown(() => feed.stop())
  return { db, got, lost, feed }
}

const notify = (db: PgDb, payload: string): Promise<unknown> => db.query('SELECT pg_notify($1, $2)', ['tsnfs_barrier', payload])

t.test('a notification committed before barrier() has been delivered when it resolves', async (t) => {
  const { db, got, feed } = await listening(t)
  db.holdFeed(HOLD_MS)
  await notify(db, 'one')
  t.notOk(got.includes('one'), 'held: not delivered when the writer got its reply (the window)')
  const started = performance.now()
  t.equal(await feed.barrier(), true)
  t.ok(got.includes('one'), 'delivered by the time the barrier resolved')
  t.ok(performance.now() - started >= HOLD_MS - 20, 'the barrier waited for the held connection')
  db.holdFeed(0)
  await notify(db, 'two')
  t.equal(await feed.barrier(), true)
  t.same(got, ['one', 'two'], 'in commit order, each once')
})

t.test('callers share rounds; one arriving during a round waits for the next', async (t) => {
  const { db, got, feed } = await listening(t)
  const before = db.stats().barriers
  const together = await Promise.all(Array.from({ length: 20 }, () => feed.barrier()))
  t.same(together, Array(20).fill(true))
  // The first caller's round is sent at once; the 19 after it arrived while it was in flight.
  t.equal(db.stats().barriers - before, 2, '20 callers at once: two round trips')

  db.holdFeed(HOLD_MS)
  const first = feed.barrier()
  // Committed while the first round is in flight: its answer was sent before this NOTIFY.
  await notify(db, 'during')
  const later = [feed.barrier(), feed.barrier(), feed.barrier()]
  await first
  t.notOk(got.includes('during'), 'the first round proves nothing about the later commit')
  t.same(await Promise.all(later), [true, true, true])
  t.ok(got.includes('during'), 'the callers after the commit waited for a round begun after it')
  t.equal(db.stats().barriers - before, 4, 'the three later callers shared one round')
})

t.test('a feed that is down answers false, and true again once it is back', async (t) => {
  const { db, lost, feed } = await listening(t)
  t.equal(await feed.barrier(), true)
  const pids = (await db.query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'tsnfs-listen' AND datname = current_database()`)).rows
  t.equal(pids.length, 1, 'one LISTEN backend')
  await db.query('SELECT pg_terminate_backend($1)', [pids[0]?.['pid']])
  for (let i = 0; i < 500 && lost.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(lost.length, 1, 'the drop was reported')
  t.equal(await feed.barrier(), false, 'no connection: nothing cached may be trusted')
  for (let i = 0; i < 500 && lost.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(lost[1]?.message, /reconnected/)
  t.equal(await feed.barrier(), true, 'after the reconnection (and its onLost) the barrier holds again')
})
