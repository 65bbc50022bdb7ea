/*
 * Telling the other servers what changed. Every transaction that changes an
 * inode's attributes, a directory's entries or a file's chunks ends with
 * notifyChanged in the same transaction: PostgreSQL delivers the NOTIFY to
 * every listening server at commit, and not at all on rollback. A server
 * drops what it cached of those inodes when the payload arrives; payloads of
 * its own session are skipped (it updated its caches itself).
 */
import { CHANGE_CHANNEL } from './schema.ts'
import type { SqlTx } from './sql.ts'

/** PostgreSQL's NOTIFY payload limit is 8000 bytes; past this many inodes we say "everything". */
const MAX_LISTED = 300

export async function notifyChanged(tx: SqlTx, sid: bigint, inodes: readonly bigint[]): Promise<void> {
  if (inodes.length === 0) return
  await tx.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, changePayload(sid, inodes)])
}

export function changePayload(sid: bigint, inodes: readonly bigint[]): string {
  const list = inodes.length > MAX_LISTED ? '*' : [...new Set(inodes)].join(',')
  return `${sid}:${list}`
}

/** `null` for a payload that does not parse (ignored); inodes `'all'` for "*". */
export function parseChange(payload: string): { sid: bigint; inodes: bigint[] | 'all' } | null {
  const m = /^(\d+):(\*|\d+(?:,\d+)*)$/.exec(payload)
  if (m === null) return null
  const inodes = m[2] === '*' ? 'all' : (m[2] ?? '').split(',').map((s) => BigInt(s))
  return { sid: BigInt(m[1] ?? '0'), inodes }
}
