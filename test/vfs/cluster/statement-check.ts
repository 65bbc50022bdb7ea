/*
 * CockroachDB's rule on one statement, applied by reading its text: several
 * modification subqueries of one table (UPDATE, DELETE, INSERT … ON
 * CONFLICT) are refused with SQLSTATE 0A000 unless they are all INSERTs
 * without ON CONFLICT (cockroachdb/cockroach#70731, #71595). checkedDb
 * wraps a SqlDb and throws that error before sending such a statement, so a
 * suite run on PostgreSQL with it fails where CockroachDB would refuse.
 * It reads our statement style (table names tsnfs_*, keywords as written);
 * it is a check of our text, not a SQL parser.
 *
 * CockroachDB has no LISTEN/NOTIFY either: pg_notify is an unknown function
 * (42883) and LISTEN/NOTIFY are unimplemented (0A000). checkedDb refuses
 * them the same way (listen() too), unless asked to allow them (a test of
 * PostgreSQL's own statement forms, which need the feed), and records every
 * refusal in `refused`: a refusal inside a background task (a flush, a
 * compaction) may only be logged, so tests also assert the list is empty.
 */
import type { SqlDb, SqlTx } from '../../../vfs/cluster/sql.ts'

/** Tables a statement modifies more than CockroachDB allows; empty when it is fine. */
export function multiModified(text: string): string[] {
  const mods = new Map<string, { inserts: number; others: number }>()
  for (const m of text.matchAll(/\b(UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+(tsnfs_\w+)/gi)) {
    const table = (m[2] ?? '').toLowerCase()
    const e = mods.get(table) ?? { inserts: 0, others: 0 }
    if (/^INSERT/i.test(m[1] ?? '')) e.inserts++
    else e.others++
    mods.set(table, e)
  }
  const upsert = /\bON\s+CONFLICT\b/i.test(text)
  return [...mods].filter(([, e]) => e.inserts + e.others > 1 && (e.others > 0 || upsert)).map(([t]) => t)
}

export class MultipleModificationError extends Error {
  readonly code = '0A000'
}

export class RefusedStatementError extends Error {
  readonly code: string

  constructor(code: string, message: string) {
    super(message)
    this.code = code
  }
}

/** Every statement refused so far (text, shortened), in any checked db of this process. */
export const refused: string[] = []

/** Does the statement ask for a notification (pg_notify, NOTIFY, LISTEN)? */
export function notifies(text: string): 'pg_notify' | 'LISTEN' | 'NOTIFY' | null {
  if (/\bpg_notify\s*\(/i.test(text)) return 'pg_notify'
  const m = /^\s*(LISTEN|UNLISTEN|NOTIFY)\b/i.exec(text)
  if (m === null) return null
  return (m[1] ?? '').toUpperCase() === 'NOTIFY' ? 'NOTIFY' : 'LISTEN'
}

function refuse(err: Error, text: string): never {
  refused.push(text.slice(0, 120).replace(/\s+/g, ' '))
  throw err
}

function check(text: string, allowNotify: boolean): void {
  const n = allowNotify ? null : notifies(text)
  if (n === 'pg_notify') refuse(new RefusedStatementError('42883', 'unknown function: pg_notify()'), text)
  if (n !== null) refuse(new RefusedStatementError('0A000', `unimplemented: ${n}`), text)
  const bad = multiModified(text)
  if (bad.length > 0) {
    refuse(new MultipleModificationError(`multiple modification subqueries of the same table "${bad.join('", "')}" are not supported: ${text.slice(0, 80).replace(/\s+/g, ' ')}…`), text)
  }
}

/**
 * `db` refusing, as CockroachDB does, every statement that modifies one table several times,
 * and (unless `allowNotify`) every notification and listen().
 */
export function checkedDb(db: SqlDb, opts: { allowNotify?: boolean } = {}): SqlDb {
  const allowNotify = opts.allowNotify === true
  const q = (tx: SqlTx) => async (text: string, params?: readonly unknown[]) => {
    check(text, allowNotify)
    return tx.query(text, params)
  }
  return {
    transaction: (fn, opts) => db.transaction((tx) => fn({ query: q(tx) }), opts),
    query: (text, params) => q(db)(text, params),
    listen: async (channel, onPayload, onLost) => {
      if (!allowNotify) refuse(new RefusedStatementError('0A000', 'unimplemented: LISTEN'), `LISTEN ${channel}`)
      return db.listen(channel, onPayload, onLost)
    },
    stats: () => db.stats(),
    close: () => db.close(),
  }
}
