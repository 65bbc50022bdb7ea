/*
 * The metadata store as the cluster backend sees it: SQL over a
 * PostgreSQL-protocol database (PostgreSQL here; the same statements must run
 * on CockroachDB and YugabyteDB). Everything above this interface is plain
 * SQL text and parameters, so tests can point it at a second database and
 * the `pg` package stays in one adapter (vfs/cluster/clients/pg-db.ts).
 */

export interface SqlRows {
  /** Column values as the driver decodes them: bigint columns arrive as strings, bytea as Buffer. */
  rows: Record<string, unknown>[]
  rowCount: number
}

export interface SqlTx {
  query(text: string, params?: readonly unknown[]): Promise<SqlRows>
}

export interface TxOptions {
  /** A read-only transaction (the database may serve it with fewer conflicts). */
  readOnly?: boolean
  /** Shown in retry and error logs: the operation this transaction is ("rename"). */
  label?: string
}

export interface SqlStats {
  /** Statements sent, each one network round trip (BEGIN and COMMIT included). */
  roundTrips: number
  transactions: number
  /** Transactions run again after a serialization failure (40001) or deadlock (40P01). */
  retries: number
  /** Barriers waited for on the LISTEN connection (Feed.barrier), not counted in roundTrips. */
  barriers: number
}

/** A LISTEN in progress (SqlDb.listen). */
export interface Feed {
  /**
   * Resolves true once a round trip on the LISTEN connection, sent after this call, has been
   * answered: every notification committed before the call has then been passed to onPayload
   * (clients/feed.ts says why). Callers arriving together share one round trip. False when
   * the connection is down or the round trip failed: what was cached cannot be trusted.
   */
  barrier(): Promise<boolean>
  /** Stop listening. */
  stop(): Promise<void>
}

export interface SqlDb {
  /**
   * Run `fn` in one transaction (REPEATABLE READ or stronger) and commit.
   * On SQLSTATE 40001 or 40P01 the whole transaction is rolled back and
   * `fn` runs again after a backoff, so `fn` must have no effects outside
   * the transaction but its return value. Other errors roll back and throw.
   */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts?: TxOptions): Promise<T>
  /** One statement in its own implicit transaction (one round trip), retried like a transaction. */
  query(text: string, params?: readonly unknown[]): Promise<SqlRows>
  /**
   * Deliver NOTIFY payloads on `channel` to `onPayload` (LISTEN on a
   * connection of its own). `onLost` is called when that connection drops:
   * the caller must then distrust everything it cached, since notifications
   * may have been missed; the adapter reconnects and listens again.
   */
  listen(channel: string, onPayload: (payload: string) => void, onLost?: (err: Error) => void): Promise<Feed>
  stats(): SqlStats
  close(): Promise<void>
}

/**
 * The PostgreSQL-protocol engine behind a SqlDb. PostgreSQL runs the one-statement forms (CTEs
 * that modify one table several times: CREATE, REMOVE, RMDIR, LINK, RENAME). CockroachDB
 * refuses a statement with several modification subqueries of one table unless they are all
 * INSERTs without ON CONFLICT (SQLSTATE 0A000, "multiple modification subqueries of the same
 * table", unless sql.multiple_modifications_of_table.enabled is set, which its docs warn can
 * corrupt data when one row is modified twice). YugabyteDB's YSQL is PostgreSQL's parser but
 * its own storage, and we have not run it: both take the step-by-step statements in one
 * transaction, which need nothing but single-table statements (meta/steps.ts).
 */
export type SqlDialect = 'postgresql' | 'cockroachdb' | 'yugabytedb'

/** The engine from `SELECT version()`: "CockroachDB CCL v23.2…", "PostgreSQL 11.2-YB-2.20…", "PostgreSQL 15.8 …". */
export function dialectOf(version: string): SqlDialect {
  if (/^CockroachDB\b/i.test(version)) return 'cockroachdb'
  if (/-YB-/.test(version)) return 'yugabytedb'
  return 'postgresql'
}

/** Whether one statement may modify one table several times (data-modifying CTEs). */
export function multiModify(d: SqlDialect): boolean {
  return d === 'postgresql'
}

export async function detectDialect(db: SqlDb): Promise<SqlDialect> {
  const r = await db.query('SELECT version() AS v')
  const v = r.rows[0]?.['v']
  return dialectOf(typeof v === 'string' ? v : '')
}

/** A database error the caller can act on; `code` is the SQLSTATE ("23505" unique violation). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.length === 5 ? code : undefined
}

/**
 * Serialization failure or deadlock: the transaction may succeed if run again. CockroachDB
 * reports its transaction restarts ("restart transaction: TransactionRetryWithProtoRefreshError",
 * RETRY_SERIALIZABLE, RETRY_WRITE_TOO_OLD, at a statement or at COMMIT) as 40001 too, so the
 * one retry path covers them. 40003 (statement completion unknown: the commit may have
 * happened) is not retried: running it again could apply it twice.
 */
export function isRetryable(err: unknown): boolean {
  const s = sqlState(err)
  return s === '40001' || s === '40P01'
}
