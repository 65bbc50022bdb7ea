/* PgDb on the shared PostgreSQL: retries of 40001 and 40P01, SERIALIZABLE, bounded waits, LISTEN after its backend is killed. */
import t from 'tap'
import type { Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { DatabaseUnavailable, PgDb, type PgDbOptions } from '../../../../vfs/cluster/clients/pg-db.ts'
import { sqlState } from '../../../../vfs/cluster/sql.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { closedPort } from '../../../helpers/ports.ts'

/** Resolves for everyone once `n` have arrived: makes two transactions interleave at a chosen point. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return async () => {
    if (++arrived >= n) open()
    await opened
  }
}

// One fresh database for this file (creating one takes a second on a loaded machine); each subtest has its own tables.
const url = await testDatabase(t)

async function openDb(t: Test, opts: Partial<PgDbOptions> = {}): Promise<{ db: PgDb; codes: string[] }> {
  const codes: string[] = []
  const db = new PgDb({ url, onRetry: (_label, code) => { codes.push(code) }, ...opts })
  t.teardown(() => db.close())
  return { db, codes }
}

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('two read-then-update transactions on one row both complete (40001 retried)', async (t) => {
  const { db, codes } = await openDb(t)
  await db.query('CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)')
  await db.query('INSERT INTO c VALUES (1, 0)')
  const bothRead = barrier(2)
  const increment = (): Promise<number> => {
    let first = true
    return db.transaction(async (tx) => {
      const v = Number((await tx.query('SELECT v FROM c WHERE id = 1')).rows[0]?.['v'])
      // Both read 0 before either writes: under REPEATABLE READ the second UPDATE must fail.
      if (first) {
        first = false
        await bothRead()
      }
      await tx.query('UPDATE c SET v = $1 WHERE id = 1', [v + 1])
      return v + 1
    }, { label: 'increment' })
  }
  const results = await Promise.all([increment(), increment()])
  t.same(results.sort(), [1, 2], 'each saw the other: no lost update')
  t.equal((await db.query('SELECT v FROM c WHERE id = 1')).rows[0]?.['v'], 2)
  t.ok(db.stats().retries >= 1, `retries ${db.stats().retries}`)
  t.ok(codes.includes('40001'), `retried on ${codes.join(',')}`)
})

t.test('a deadlock made on purpose is retried (40P01)', async (t) => {
  const { db, codes } = await openDb(t)
  await db.query('CREATE TABLE d (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)')
  await db.query('INSERT INTO d VALUES (1, 0), (2, 0)')
  const bothLocked = barrier(2)
  const cross = (a: number, b: number): Promise<void> => {
    let first = true
    return db.transaction(async (tx) => {
      await tx.query('UPDATE d SET v = v + 1 WHERE id = $1', [a])
      if (first) {
        first = false
        await bothLocked()
      }
      await tx.query('UPDATE d SET v = v + 1 WHERE id = $1', [b])
    }, { label: 'cross' })
  }
  const started = Date.now()
  await Promise.all([cross(1, 2), cross(2, 1)])
  t.comment(`both done in ${Date.now() - started} ms (deadlock_timeout is 1 s)`)
  const rows = (await db.query('SELECT id, v FROM d ORDER BY id')).rows
  t.same(rows.map((r) => r['v']), [2, 2], 'each transaction committed once')
  t.ok(codes.includes('40P01'), `retried on ${codes.join(',')}`)
})

t.test('SERIALIZABLE: write skew is refused and retried; REPEATABLE READ lets it through', async (t) => {
  // Two doctors on call; each may go off call if the other is still on. Only SERIALIZABLE keeps one on.
  const run = async (isolation: 'repeatable read' | 'serializable'): Promise<{ onCall: number; codes: string[]; level: string }> => {
    const { db, codes } = await openDb(t, { isolation })
    const duty = isolation === 'serializable' ? 'duty_s' : 'duty_r'
    await db.query(`CREATE TABLE ${duty} (id INTEGER PRIMARY KEY, on_call BOOLEAN NOT NULL)`)
    await db.query(`INSERT INTO ${duty} VALUES (1, true), (2, true)`)
    const bothCounted = barrier(2)
    let level = ''
    const goOff = (id: number): Promise<void> => {
      let first = true
      return db.transaction(async (tx) => {
        level = String((await tx.query('SHOW transaction_isolation')).rows[0]?.['transaction_isolation'])
        const n = Number((await tx.query(`SELECT count(*) AS n FROM ${duty} WHERE on_call`)).rows[0]?.['n'])
        if (first) {
          first = false
          await bothCounted()
        }
        if (n >= 2) await tx.query(`UPDATE ${duty} SET on_call = false WHERE id = $1`, [id])
      })
    }
    await Promise.all([goOff(1), goOff(2)])
    const onCall = Number((await db.query(`SELECT count(*) AS n FROM ${duty} WHERE on_call`)).rows[0]?.['n'])
    return { onCall, codes, level }
  }
  const rr = await run('repeatable read')
  t.equal(rr.level, 'repeatable read')
  t.equal(rr.onCall, 0, 'REPEATABLE READ: both went off call (write skew)')
  const ser = await run('serializable')
  t.equal(ser.level, 'serializable')
  t.equal(ser.onCall, 1, 'SERIALIZABLE: one stays on call')
  t.ok(ser.codes.includes('40001'), `retried on ${ser.codes.join(',')}`)
})

t.test('a statement past statement_timeout fails with 57014, is not retried, and the pool goes on', async (t) => {
  const { db } = await openDb(t, { statementTimeoutMs: 300 })
  const started = Date.now()
  const err = await db.query('SELECT pg_sleep(5)').then(() => undefined, (e: unknown) => e)
  t.equal(sqlState(err), '57014', 'query_canceled')
  t.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`)
  t.equal(db.stats().retries, 0)
  t.same((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }])
})

t.test('a closed port: DatabaseUnavailable naming the database, within a bound', async (t) => {
  const port = await closedPort()
  const db = new PgDb({ url: `postgres://postgres@127.0.0.1:${port}/nowhere` })
  t.teardown(() => db.close())
  const started = Date.now()
  const err = await db.transaction(async (tx) => tx.query('SELECT 1')).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof DatabaseUnavailable, String(err))
  t.match((err as Error).message, `postgres postgres@127.0.0.1:${port}/nowhere`)
  t.match((err as Error).message, /ECONNREFUSED/)
  t.equal((err as DatabaseUnavailable).outcomeUnknown, false, 'nothing was sent')
  t.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms (3 tries)`)
  t.equal(db.stats().retries, 2, 'two more tries on a fresh connection')
})

t.test('a server that accepts and never answers: connect timeout, not a hang', async (t) => {
  const sockets = new Set<net.Socket>()
  const silent = net.createServer((s) => { sockets.add(s) })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const port = (silent.address() as net.AddressInfo).port
  const db = new PgDb({ url: `postgres://postgres@127.0.0.1:${port}/silent`, connectTimeoutMs: 400, reconnectAttempts: 2 })
  t.teardown(() => db.close())
  const started = Date.now()
  const err = await db.query('SELECT 1').then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof DatabaseUnavailable, String(err))
  t.match((err as Error).message, `127.0.0.1:${port}/silent`)
  t.match((err as Error).message, /timeout/)
  t.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`)
})

t.test('a connection that goes silent under a statement: read timeout, outcome unknown, the pool recovers', async (t) => {
  // A TCP relay to the real server that we can freeze: a network partition, as the client sees it.
  const target = new URL(url)
  let frozen = false
  const pairs = new Set<[net.Socket, net.Socket]>()
  const relay = net.createServer((down) => {
    const up = net.connect(Number(target.port), target.hostname)
    pairs.add([down, up])
    down.on('data', (b) => { if (!frozen) up.write(b) })
    up.on('data', (b) => { if (!frozen) down.write(b) })
    down.on('error', () => up.destroy())
    up.on('error', () => down.destroy())
    down.on('close', () => up.destroy())
    up.on('close', () => down.destroy())
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  t.teardown(() => {
    for (const [a, b] of pairs) {
      a.destroy()
      b.destroy()
    }
    relay.close()
  })
  const relayed = new URL(url)
  relayed.port = String((relay.address() as net.AddressInfo).port)
  const db = new PgDb({ url: relayed.toString(), statementTimeoutMs: 200, readTimeoutMs: 700 })
  t.teardown(() => db.close())
  t.same((await db.query('SELECT 2 AS two')).rows, [{ two: 2 }])
  frozen = true
  const started = Date.now()
  const err = await db.query('SELECT 3').then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof DatabaseUnavailable, String(err))
  t.match((err as Error).message, /Query read timeout/)
  t.equal((err as DatabaseUnavailable).outcomeUnknown, true, 'a lone statement may have run')
  t.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`)
  frozen = false
  // The silent connection was destroyed, not put back: the next statement gets a fresh one.
  t.same((await db.query('SELECT 4 AS four')).rows, [{ four: 4 }])
  t.same(await db.transaction(async (tx) => (await tx.query('SELECT 5 AS five')).rows), [{ five: 5 }])
})

t.test('LISTEN: the backend killed → onLost, then notifications flow again', async (t) => {
  const { db } = await openDb(t)
  const got: string[] = []
  const lost: Error[] = []
  const feed = await db.listen('tsnfs_test', (p) => { got.push(p) }, (e) => { lost.push(e) })
  await db.query('SELECT pg_notify($1, $2)', ['tsnfs_test', 'before'])
  await waitFor('the first notification', () => got.includes('before'))
  const pids = (await db.query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'tsnfs-listen' AND datname = current_database()`)).rows
  t.equal(pids.length, 1, 'one LISTEN backend')
  await db.query('SELECT pg_terminate_backend($1)', [pids[0]?.['pid']])
  await waitFor('onLost for the drop and the reconnection', () => lost.length >= 2)
  t.ok(lost[0] instanceof DatabaseUnavailable, `first: ${String(lost[0])}`)
  t.match(lost[0]?.message, /LISTEN tsnfs_test connection lost/)
  t.match(lost[1]?.message, /LISTEN tsnfs_test reconnected/)
  await db.query('SELECT pg_notify($1, $2)', ['tsnfs_test', 'after'])
  await waitFor('a notification after the reconnection', () => got.includes('after'))
  await feed.stop()
  await db.query('SELECT pg_notify($1, $2)', ['tsnfs_test', 'stopped'])
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.notOk(got.includes('stopped'), 'nothing after stop')
  t.equal(lost.length, 2, 'stopping is not a loss')
})
