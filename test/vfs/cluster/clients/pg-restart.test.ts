/* PgDb against a database that is restarted and crashed (a private PostgreSQL): errors within a bound, in-flight work retried, the pool and LISTEN recover. */
import t from 'tap'
import { DatabaseUnavailable, PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { privatePostgres } from './private-postgres.ts'

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

t.test('restart and crash of the database', async (t) => {
  const pgsrv = await privatePostgres(t)
  const codes: string[] = []
  const db = new PgDb({ url: pgsrv.url, connectTimeoutMs: 1000, onRetry: (_l, code) => { codes.push(code) } })
  t.teardown(() => db.close())
  await db.query('CREATE TABLE r (id INTEGER PRIMARY KEY)')
  const got: string[] = []
  const lost: string[] = []
  const feed = await db.listen('chg', (p) => { got.push(p) }, (e) => { lost.push(e.message) })
  t.teardown(() => feed.stop())

  await t.test('a transaction whose connection is cut before COMMIT runs again on a fresh one', async (t) => {
    let attempts = 0
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    let reached!: () => void
    const atGate = new Promise<void>((resolve) => { reached = resolve })
    const tx = db.transaction(async (tx) => {
      attempts++
      await tx.query('INSERT INTO r VALUES (1)')
      if (attempts === 1) {
        reached()
        await gate
      }
      await tx.query('INSERT INTO r VALUES (2)')
    }, { label: 'two rows' })
    await atGate
    // The backend is told to exit while the transaction is open between two statements.
    await pgsrv.stop('fast')
    await pgsrv.start()
    release()
    await tx
    t.equal(attempts, 2, 'the second attempt on a fresh connection')
    t.ok(codes.includes('DB_UNAVAILABLE'), `retried on ${codes.join(',')}`)
    t.same((await db.query('SELECT id FROM r ORDER BY id')).rows.map((r) => r['id']), [1, 2], 'committed once')
  })

  await t.test('crashed: every call fails within a bound, naming the database', async (t) => {
    await waitFor('LISTEN back after the restart', () => lost.some((m) => /reconnected/.test(m)))
    lost.length = 0
    await pgsrv.stop('immediate')
    for (const [name, op] of [['query', () => db.query('SELECT 1')], ['transaction', () => db.transaction((tx) => tx.query('SELECT 1'))]] as const) {
      const started = Date.now()
      const err = await op().then(() => undefined, (e: unknown) => e)
      t.ok(err instanceof DatabaseUnavailable, `${name}: ${String(err)}`)
      t.match((err as Error).message, `postgres postgres@127.0.0.1:${pgsrv.port}/postgres`)
      t.ok(Date.now() - started < 5000, `${name} failed after ${Date.now() - started} ms`)
    }
    await waitFor('onLost from the LISTEN connection', () => lost.length >= 1)
    t.match(lost[0], /LISTEN chg connection lost/)
  })

  await t.test('back up: the pool and LISTEN recover by themselves', async (t) => {
    await pgsrv.start()
    t.same((await db.query('SELECT count(*)::INTEGER AS n FROM r')).rows, [{ n: 2 }], 'the pool reconnects (nothing committed is lost)')
    await db.transaction((tx) => tx.query('INSERT INTO r VALUES (3)'))
    await waitFor('LISTEN reconnected', () => lost.some((m) => /reconnected/.test(m)))
    await db.query('SELECT pg_notify($1, $2)', ['chg', 'after-crash'])
    await waitFor('a notification after the crash', () => got.includes('after-crash'))
    t.pass('notifications flow again')
  })
})
