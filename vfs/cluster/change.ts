/*
 * Telling the other servers what changed. Every transaction that changes an
 * inode's attributes, a directory's entries or a file's chunks ends with
 * notifyChanged in the same transaction: PostgreSQL delivers the NOTIFY to
 * every listening server at commit, and not at all on rollback. A server
 * drops what it cached of those inodes when the payload arrives; payloads of
 * its own session are skipped (it updated its caches itself).
 *
 * An inode may carry the version its row reached ("<inode>@<ver>", the
 * metadata statements of vfs/cluster/meta/ build such payloads in SQL): a
 * server whose copy is at that version or later keeps it, and its own
 * echoes are then harmless (meta/cache.ts). The data half's attach and
 * compaction name versions too (data/attach.ts, data/compaction.ts). An
 * inode without a version (a row deleted; the step-by-step statements'
 * lists, built by announce()) is always dropped by the other servers.
 *
 * On an engine without notifications (CockroachDB, YugabyteDB before
 * v2025.2.3) nothing is announced: the caller passes sid null and servers
 * validate per request instead (meta/cache-mode.ts).
 */
import { CHANGE_CHANNEL } from './schema.ts'
import type { SqlTx } from './sql.ts'

/** PostgreSQL's NOTIFY payload limit is 8000 bytes; past this many inodes we say "everything". */
const MAX_LISTED = 300

/** `sid` null: this server announces nothing (no pg_notify is sent). */
export async function notifyChanged(tx: SqlTx, sid: bigint | null, inodes: readonly bigint[]): Promise<void> {
  if (inodes.length === 0 || sid === null) return
  await tx.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, changePayload(sid, inodes)])
}

/** The payload to send with a change, or undefined when this server announces nothing (`sid` null). */
export function announce(sid: bigint | null, inodes: readonly bigint[]): string | undefined {
  return sid === null ? undefined : changePayload(sid, inodes)
}

export function changePayload(sid: bigint, inodes: readonly bigint[]): string {
  const list = inodes.length > MAX_LISTED ? '*' : [...new Set(inodes)].join(',')
  return `${sid}:${list}`
}

export interface Change {
  sid: bigint
  inodes: bigint[] | 'all'
  /** The versions named in the payload, by inode (inodes without one are absent). */
  vers: Map<bigint, bigint>
}

/** `null` for a payload that does not parse (ignored); inodes `'all'` for "*". */
export function parseChange(payload: string): Change | null {
  const m = /^(\d+):(\*|\d+(?:@\d+)?(?:,\d+(?:@\d+)?)*)$/.exec(payload)
  if (m === null) return null
  const vers = new Map<bigint, bigint>()
  if (m[2] === '*') return { sid: BigInt(m[1] ?? '0'), inodes: 'all', vers }
  const inodes: bigint[] = []
  for (const item of (m[2] ?? '').split(',')) {
    const [i, v] = item.split('@')
    const inode = BigInt(i ?? '0')
    inodes.push(inode)
    if (v !== undefined) vers.set(inode, BigInt(v))
  }
  return { sid: BigInt(m[1] ?? '0'), inodes, vers }
}
