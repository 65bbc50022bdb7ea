/*
 * CockroachDB's rule on one statement, applied by reading its text: several
 * modification subqueries of one table (UPDATE, DELETE, INSERT … ON
 * CONFLICT) are refused with SQLSTATE 0A000 unless they are all INSERTs
 * without ON CONFLICT (cockroachdb/cockroach#70731, #71595). checkedDb
 * wraps a SqlDb and throws that error before sending such a statement, so a
 * suite run on PostgreSQL with it fails where CockroachDB would refuse.
 * It reads our statement style (table names tsnfs_*, keywords as written);
 * it is a check of our text, not a SQL parser.
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

function check(text: string): void {
  const bad = multiModified(text)
  if (bad.length > 0) {
    throw new MultipleModificationError(`multiple modification subqueries of the same table "${bad.join('", "')}" are not supported: ${text.slice(0, 80).replace(/\s+/g, ' ')}…`)
  }
}

/** `db` refusing, as CockroachDB does, every statement that modifies one table several times. */
export function checkedDb(db: SqlDb): SqlDb {
  const q = (tx: SqlTx) => (text: string, params?: readonly unknown[]) => {
    check(text)
    return tx.query(text, params)
  }
  return {
    transaction: (fn, opts) => db.transaction((tx) => fn({ query: q(tx) }), opts),
    query: (text, params) => q(db)(text, params),
    listen: (channel, onPayload, onLost) => db.listen(channel, onPayload, onLost),
    stats: () => db.stats(),
    close: () => db.close(),
  }
}
