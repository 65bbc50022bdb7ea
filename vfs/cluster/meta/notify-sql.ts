/*
 * The NOTIFY payload of a one-statement change, built in SQL from what the
 * statement's CTEs returned, so it names the versions the rows reached
 * ("<sid>:<inode>@<ver>,...", vfs/cluster/change.ts) and is sent only if
 * the statement commits (pg_notify inside it; PostgreSQL delivers at commit).
 */

/**
 * `sid`: the parameter holding the session id ('$9'); `versioned`: CTEs with
 * columns inode and ver (rows as changed); `deleted`: CTEs with a column
 * inode (rows gone: named without a version, so every copy is dropped).
 */
export function payloadSql(sid: string, versioned: readonly string[], deleted: readonly string[] = []): string {
  const parts = [
    ...versioned.map((c) => `SELECT inode::text || '@' || ver::text AS item FROM ${c}`),
    ...deleted.map((c) => `SELECT inode::text AS item FROM ${c}`),
  ]
  return `(${sid}::text || ':' || (SELECT string_agg(item, ',') FROM (${parts.join(' UNION ALL ')}) z))`
}
