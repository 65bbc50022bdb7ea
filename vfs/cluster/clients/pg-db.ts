/*
 * SqlDb on node-postgres (`pg`). Transactions run at REPEATABLE READ (or
 * SERIALIZABLE) and are retried on serialization failures and deadlocks
 * (SQLSTATE 40001, 40P01) with jittered exponential backoff: the answer
 * JuiceFS users reached when PostgreSQL metadata met concurrent writers.
 *
 * A dead or unreachable database gives errors, never hangs: connecting is
 * bounded (connectTimeoutMs), every statement is bounded on the server
 * (statement_timeout) and, should the server stop answering at all, on our
 * side (query_timeout, a little longer). A connection lost under a
 * transaction that had not sent COMMIT is harmless (the database rolled it
 * back), so that transaction runs again on a fresh connection a few times
 * before DatabaseUnavailable is thrown; once COMMIT is sent its outcome is
 * unknown and the error goes up at once. Broken connections are dropped from
 * the pool, so it recovers by itself when the database is back.
 */
import pg from 'pg'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Socket } from 'node:net'
import { isRetryable, sqlState, type Feed, type SqlDb, type SqlRows, type SqlStats, type SqlTx, type TxOptions } from '../sql.ts'
import { BarrierRounds, holdReads } from './feed.ts'

// BIGINT (int8) stays a string: JavaScript numbers lose precision past 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => v)

export interface PgDbOptions {
  /** postgres://user@host:port/db?...; the password comes from `password`, PGPASSWORD or ~/.pgpass, never the URL in production. */
  url: string
  password?: string
  /** REPEATABLE READ (default) or SERIALIZABLE (what CockroachDB always runs). */
  isolation?: 'repeatable read' | 'serializable'
  /** Connections in the pool. */
  max?: number
  /** Attempts per transaction before the retryable error is thrown. */
  maxAttempts?: number
  /** Bound on opening a connection (TCP, TLS, authentication); default 5000 ms. */
  connectTimeoutMs?: number
  /** Server-side bound on one statement (statement_timeout, SQLSTATE 57014); default 30000 ms. */
  statementTimeoutMs?: number
  /** Our own bound on waiting for any answer (a server or network that went silent); default statementTimeoutMs + 5000. */
  readTimeoutMs?: number
  /** Attempts of a transaction whose connection was lost before COMMIT (fresh connection each); default 3. */
  reconnectAttempts?: number
  log?: (msg: string) => void
  /** Told of every retry (tests prove which SQLSTATE was retried; operators may count them). */
  onRetry?: (label: string, code: string, attempt: number) => void
}

/**
 * The database could not be reached, or the connection broke under a
 * statement. `outcomeUnknown`: the break came while COMMIT (or a lone
 * statement) was in flight, so it may have taken effect.
 */
export class DatabaseUnavailable extends Error {
  readonly code = 'DB_UNAVAILABLE'
  readonly outcomeUnknown: boolean
  constructor(message: string, outcomeUnknown: boolean, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DatabaseUnavailable'
    this.outcomeUnknown = outcomeUnknown
  }
}

/** Where the database is, for messages: user@host:port/db, never a password. */
export function describeDatabase(url: string): string {
  try {
    const u = new URL(url)
    const host = u.searchParams.get('host') ?? u.host
    return `postgres ${u.username === '' ? '' : `${decodeURIComponent(u.username)}@`}${host}${u.pathname}`
  } catch {
    return 'postgres (unparsable URL)'
  }
}

/**
 * Whether a driver error means the connection (not the statement) failed:
 * class 08 (connection exception) and 57P01..57P03 (the server shutting down
 * or starting) from the server, and anything without a SQLSTATE from the
 * socket or pg itself ("Connection terminated unexpectedly", ECONNREFUSED,
 * "Query read timeout", "timeout exceeded when trying to connect").
 */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) {
    const s = sqlState(err) ?? ''
    return s.startsWith('08') || s === '57P01' || s === '57P02' || s === '57P03'
  }
  // Our own misuse (a bad parameter type) is a bug to surface, not an outage.
  if (err instanceof TypeError || err instanceof RangeError) return false
  // Authentication pg refused before asking the server (no password for SCRAM): configuration, not an outage.
  if (err instanceof Error && err.message.startsWith('SASL:')) return false
  return err instanceof Error
}

/**
 * The URL pg connects with. pg lets the connection string's (empty)
 * password override a `password` option, so the password goes inside this
 * private copy of the URL; it is never logged (messages use describeDatabase).
 */
function connectionString(url: string, password: string | undefined): string {
  if (password === undefined) return url
  const u = new URL(url)
  u.password = encodeURIComponent(password)
  return u.toString()
}

export class PgDb implements SqlDb {
  private readonly pool: pg.Pool
  private readonly opts: PgDbOptions
  private readonly where: string
  private readonly connectTo: string
  private readonly counts: SqlStats = { roundTrips: 0, transactions: 0, retries: 0, barriers: 0 }
  private readonly listeners = new Set<pg.Client>()
  private closed = false
  /** Test hook (holdFeed): how long the LISTEN connections' incoming bytes are held. */
  private feedHoldMs = 0

  constructor(opts: PgDbOptions) {
    this.opts = opts
    this.where = describeDatabase(opts.url)
    this.connectTo = connectionString(opts.url, opts.password)
    const statementTimeout = opts.statementTimeoutMs ?? 30_000
    this.pool = new pg.Pool({
      connectionString: this.connectTo,
      max: opts.max ?? 8,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      statement_timeout: statementTimeout,
      // The server enforces statement_timeout; this catches a server that stopped answering altogether.
      query_timeout: opts.readTimeoutMs ?? statementTimeout + 5000,
      keepAlive: true,
      application_name: 'tsnfs',
    })
    // An idle connection that dies (database restart) must not crash the process; the pool drops it.
    this.pool.on('error', (err) => opts.log?.(`${this.where}: idle connection lost: ${err.message}`))
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    const begin = `BEGIN ISOLATION LEVEL ${(this.opts.isolation ?? 'repeatable read').toUpperCase()}${opts.readOnly === true ? ' READ ONLY' : ''}`
    const label = opts.label ?? 'transaction'
    return this.retrying(label, () => this.withClient(label, async (client) => {
      this.counts.transactions++
      await this.send(client, begin, undefined, label, false)
      const tx: SqlTx = { query: (text, params) => this.send(client, text, params, label, false) }
      let out: T
      try {
        out = await fn(tx)
      } catch (err) {
        // The connection is gone (the database rolled back for us) or still good: then roll back here.
        if (!(err instanceof DatabaseUnavailable)) await this.send(client, 'ROLLBACK', undefined, label, false)
        throw err
      }
      await this.send(client, 'COMMIT', undefined, label, true)
      return out
    }))
  }

  async query(text: string, params?: readonly unknown[]): Promise<SqlRows> {
    return this.retrying('query', () => this.withClient('query', (client) => this.send(client, text, params, 'query', true)))
  }

  async listen(channel: string, onPayload: (payload: string) => void, onLost?: (err: Error) => void): Promise<Feed> {
    let stopped = false
    let client: pg.Client | undefined
    // Set once the caller has been told to distrust its cache after a reconnect (onLost), so a
    // barrier never vouches for what was cached while notifications could be missed.
    let trusted = false
    // A function, not the expression: both flags change while we await.
    const done = (): boolean => stopped || this.closed
    const connect = async (): Promise<void> => {
      const c = new pg.Client({
        connectionString: this.connectTo,
        connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 5000,
        // A barrier waits on this connection: a silent server must not hold requests forever.
        query_timeout: this.opts.readTimeoutMs ?? (this.opts.statementTimeoutMs ?? 30_000) + 5000,
        keepAlive: true,
        application_name: 'tsnfs-listen',
      })
      c.on('notification', (n) => { if (n.channel === channel) onPayload(n.payload ?? '') })
      // A terminated backend gives 'error' then 'end'; a socket that just closes gives only 'end'.
      let lost = false
      const drop = (err: Error): void => {
        if (lost) return
        lost = true
        trusted = false
        this.listeners.delete(c)
        if (client === c) client = undefined
        if (done()) return
        onLost?.(new DatabaseUnavailable(`${this.where}: LISTEN ${channel} connection lost: ${err.message}`, false, { cause: err }))
        void reconnect()
      }
      c.on('error', drop)
      c.on('end', () => { drop(new Error('connection closed')) })
      try {
        await c.connect()
        await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
        holdReads((c as unknown as { connection: { stream: Socket } }).connection.stream, () => this.feedHoldMs)
      } catch (err) {
        lost = true
        await c.end().catch(() => undefined)
        throw err
      }
      client = c
      this.listeners.add(c)
    }
    const reconnect = async (): Promise<void> => {
      for (let delay = 100; !done(); delay = Math.min(delay * 2, 5000)) {
        await sleep(delay)
        if (done()) return
        try {
          await connect()
          if (done()) {
            await client?.end().catch(() => undefined)
            return
          }
          // Whatever changed while we were away was not announced to us: distrust it all again.
          onLost?.(new Error(`${this.where}: LISTEN ${channel} reconnected`))
          trusted = client !== undefined
          return
        } catch (err) {
          this.opts.log?.(`${this.where}: LISTEN ${channel} reconnect failed: ${(err as Error).message}`)
        }
      }
    }
    try {
      await connect()
    } catch (err) {
      throw this.unavailable(err, `LISTEN ${channel}`, false)
    }
    trusted = true
    const stillTrusted = (c: pg.Client): boolean => trusted && client === c
    const rounds = new BarrierRounds(async () => {
      const c = client
      if (c === undefined || !trusted || done()) return false
      this.counts.barriers++
      await c.query('SELECT 1')
      // The connection may have dropped (and come back) while we waited: a function, read now.
      return stillTrusted(c)
    })
    return {
      barrier: () => rounds.wait(),
      stop: async () => {
        stopped = true
        const c = client
        if (c === undefined) return
        this.listeners.delete(c)
        await c.end().catch(() => undefined)
      },
    }
  }

  /**
   * Tests: hold what every LISTEN connection receives `ms` longer (0: no more), in order, so a
   * notification arrives late and a barrier's answer with it behind the notification.
   */
  holdFeed(ms: number): void {
    this.feedHoldMs = ms
  }

  stats(): SqlStats {
    return { ...this.counts }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const c of this.listeners) await c.end().catch(() => undefined)
    this.listeners.clear()
    await this.pool.end()
  }

  /**
   * A pooled connection for `fn`. While we hold it the pool does not listen
   * for its errors, and an 'error' event with no listener (the backend
   * terminated between two statements) would crash the process: we listen,
   * and a connection that failed in any way is destroyed on release, not
   * reused.
   */
  private async withClient<T>(label: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (err) {
      // Refused (a wrong password 28P01, no such database 3D000): no use trying again, keep the SQLSTATE.
      if (!isConnectionError(err)) throw err
      // Nothing was sent: safe to try again.
      throw this.unavailable(err, label, false)
    }
    let broken: Error | undefined
    const onError = (err: Error): void => { broken = err }
    client.on('error', onError)
    try {
      return await fn(client)
    } catch (err) {
      if (err instanceof DatabaseUnavailable) broken ??= err
      else if (isConnectionError(err)) broken ??= err as Error
      throw err
    } finally {
      client.off('error', onError)
      client.release(broken)
    }
  }

  private async send(client: pg.PoolClient, text: string, params: readonly unknown[] | undefined, label: string, commits: boolean): Promise<SqlRows> {
    this.counts.roundTrips++
    try {
      const r = await client.query(text, params as unknown[] | undefined)
      return { rows: r.rows as Record<string, unknown>[], rowCount: r.rowCount ?? 0 }
    } catch (err) {
      // pg refuses a connection it already knows is broken before sending anything: nothing ran.
      if (isConnectionError(err)) throw this.unavailable(err, label, commits && !/is not queryable/.test((err as Error).message))
      throw err
    }
  }

  private unavailable(err: unknown, label: string, outcomeUnknown: boolean): DatabaseUnavailable {
    const msg = err instanceof Error ? err.message : String(err)
    const code = (err as { code?: unknown } | null)?.code
    const detail = typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg
    return new DatabaseUnavailable(`${this.where}: ${label} failed: ${detail}${outcomeUnknown ? '; it may or may not have committed' : ''}`, outcomeUnknown, { cause: err })
  }

  private async retrying<T>(label: string, attempt: () => Promise<T>): Promise<T> {
    const max = this.opts.maxAttempts ?? 12
    const reconnects = this.opts.reconnectAttempts ?? 3
    let lostConnections = 0
    for (let n = 1; ; n++) {
      try {
        return await attempt()
      } catch (err) {
        if (err instanceof DatabaseUnavailable) {
          // Rolled back for sure (COMMIT never sent): a fresh connection may do it, a few times at most.
          if (err.outcomeUnknown || this.closed || ++lostConnections >= reconnects) throw err
          this.counts.retries++
          this.opts.onRetry?.(label, err.code, n)
          await sleep(100 * 2 ** (lostConnections - 1))
          continue
        }
        if (!isRetryable(err) || n >= max) throw err
        this.counts.retries++
        this.opts.onRetry?.(label, sqlState(err) ?? '', n)
        // Jittered exponential backoff, 2 ms doubling to 500 ms: colliding writers spread out.
        const cap = Math.min(500, 2 * 2 ** n)
        await sleep(cap / 2 + Math.random() * (cap / 2))
        if (n === 4) this.opts.log?.(`${this.where}: ${label} retried ${n} times (${(err as Error).message})`)
      }
    }
  }
}
