/*
 * The statement that makes uploaded slices part of a file: their records
 * are appended to the chunk rows, their reference rows created, their
 * pending rows deleted, the node's size and times set, and the change
 * announced — all or nothing (issue 17 §2: one transaction per operation).
 *
 * The node's version (tsnfs_node.ver) goes up by one like any metadata
 * change's, and the notification names the version reached ("<inode>@<ver>",
 * meta/notify-sql.ts): without it a copy cached before the attach and the
 * row after it carried the same version, so no server could tell the stale
 * size and mtime from the new ones by version (meta/cache.ts orders by it),
 * and the writer's own echo, unversioned, was skipped (cache-follower.ts).
 *
 * COUNTER.usedBytes is NOT updated here: one row that every write of every
 * server updates would serialize all commits of the cluster (each
 * concurrent writer fails with 40001 and retries). The caller adds the
 * bytes to a per-server delta it applies about once a second (as JuiceFS
 * batches its used-space counters); a crash loses at most that second's
 * delta, which fsck reports (usage-mismatch).
 */
import { VfsError } from '../../errors.ts'
import type { Timespec } from '../../types.ts'
import { payloadSql } from '../meta/notify-sql.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import type { SqlTx } from '../sql.ts'
import { encodeSlices, SLICE_RECORD_BYTES, type SliceRecord } from './slice.ts'

export interface NewSlice {
  idx: number
  record: SliceRecord
}

export interface AttachArgs {
  /** This server's session, named in the notification; null: nothing announced (no change feed). */
  sid: bigint | null
  inode: bigint
  slices: readonly NewSlice[]
  /** File offset just past the last byte written: the node's size becomes at least this. */
  end: bigint
  mtime: Timespec
}

/**
 * The attach found some of its pending rows gone and attached nothing: the
 * bytes are not stored. EAGAIN (NFS3ERR_JUKEBOX, RFC 1813 §2.6): the flush
 * keeps them staged and the client's retry stores them as new slices.
 */
export class AttachLost extends VfsError {
  constructor(message: string) {
    super('EAGAIN', message)
    this.name = 'AttachLost'
  }
}

export interface Attached {
  /** Records per chunk touched, after the attach (the caller compacts long lists). */
  counts: Map<number, number>
  /** The node's version the attach took it to (named in its notification). */
  ver: bigint
}

/**
 * The attach as ONE data-modifying statement in autocommit (one round trip;
 * issue 17 §6 counts them). Every part hangs off the node's UPDATE: with no
 * node row (the file was removed while we uploaded) the chunk insert, the
 * references and the NOTIFY see no rows, nothing changes, and the statement
 * returns no rows (ESTALE). Under PostgreSQL's READ COMMITTED a concurrent
 * writer of the node or chunk row makes the statement wait and re-read that
 * row, not fail; under SERIALIZABLE (CockroachDB) a conflict is a 40001 that
 * SqlDb.query retries: one statement has no effects outside itself.
 * Data-modifying CTEs run to completion whether or not the outer SELECT reads
 * them (PostgreSQL manual, "WITH Queries", 7.8.4).
 *
 * The attach REQUIRES its slices' pending rows: it deletes them first (p) and
 * the node's UPDATE, which everything else hangs off, happens only if p
 * deleted every one. A failed flush's abandonSlices (upload.ts) deletes the
 * same rows, then the blocks of those it got; the attach of that flush may
 * still be running on the server (the client gave up on its reply). Row locks
 * order the two DELETEs: the second waits for the first to commit, then finds
 * the rows gone (READ COMMITTED re-checks a row it waited for and skips a
 * deleted one; under SERIALIZABLE the loser gets 40001 and its retry finds
 * them gone). So exactly one of the two has each slice: an attach that lost
 * any row attaches nothing, and abandon never deletes blocks a committed
 * chunk names. p reads the node too, so with the file gone the rows stay for
 * abandon, which then deletes the blocks at once (not left to gc). All CTEs
 * share one snapshot and see each other only through RETURNING (7.8.4), which
 * is how n sees p's count.
 */
export async function attachSlices(db: SqlTx, a: AttachArgs): Promise<Attached> {
  // The node's used bytes grow by what the records show of stored slices (zero records store nothing).
  const stored = a.slices.reduce((n, s) => n + (s.record.id === 0n ? 0 : s.record.len), 0)
  const params: unknown[] = [a.inode, a.end, a.mtime.sec, a.mtime.nsec, stored]
  const byIdx = new Map<number, SliceRecord[]>()
  for (const s of a.slices) {
    const list = byIdx.get(s.idx) ?? []
    list.push(s.record)
    byIdx.set(s.idx, list)
  }
  const chunkRows = [...byIdx].map(([idx, recs]) => {
    params.push(idx, encodeSlices(recs))
    return `($${params.length - 1}::INTEGER, $${params.length}::BYTEA)`
  })
  const ids = a.slices.filter((s) => s.record.id !== 0n)
  const refRows = ids.map((s) => {
    params.push(s.record.id, s.record.size)
    return `($${params.length - 1}::BIGINT, $${params.length}::INTEGER)`
  })
  const pending = ids.length === 0 ? '' : `p AS (
  DELETE FROM tsnfs_pending_slice WHERE id IN (SELECT v.id FROM (VALUES ${refRows.join(', ')}) AS v(id, size))
    AND EXISTS (SELECT 1 FROM tsnfs_node WHERE inode = $1)
  RETURNING id
),
`
  const required = ids.length === 0 ? '' : ` AND (SELECT count(*) FROM p) = ${ids.length}`
  const refs = ids.length === 0 ? '' : `,
r AS (
  INSERT INTO tsnfs_slice_ref (id, size, refs)
  SELECT v.id, v.size, 1 FROM n, (VALUES ${refRows.join(', ')}) AS v(id, size)
)`
  // The notification's parameters come last, and only when one is sent (an unused $n has no type).
  // Its payload is built from n's row, so it names the version the UPDATE reached.
  if (a.sid !== null) params.push(CHANGE_CHANNEL, a.sid)
  const notify = a.sid === null ? '' : `, pg_notify($${params.length - 1}, ${payloadSql(`$${params.length}`, ['n'])}) AS notified`
  const r = await db.query(
    `WITH ${pending}n AS (
  UPDATE tsnfs_node SET size = GREATEST(size, $2), mtime_sec = $3, mtime_nsec = $4, ctime_sec = $3, ctime_nsec = $4,
    used = used + $5::bigint, ver = ver + 1
  WHERE inode = $1${required} RETURNING inode, ver
),
c AS (
  INSERT INTO tsnfs_chunk (inode, idx, slices)
  SELECT n.inode, v.idx, v.slices FROM n, (VALUES ${chunkRows.join(', ')}) AS v(idx, slices)
  ON CONFLICT (inode, idx) DO UPDATE SET slices = tsnfs_chunk.slices || EXCLUDED.slices
  RETURNING idx, octet_length(slices) AS len
)${refs}
SELECT c.idx, c.len, n.ver${notify} FROM c, n`,
    params,
  )
  if (r.rowCount === 0) {
    // Nothing attached; one more round trip, on this path only, says why.
    const node = await db.query('SELECT 1 FROM tsnfs_node WHERE inode = $1', [a.inode])
    // The file was removed (and its chunks released) while we uploaded: nothing to attach to.
    if (node.rowCount === 0) throw new VfsError('ESTALE', `inode ${a.inode} is gone`)
    throw new AttachLost(`inode ${a.inode}: the slices' pending rows were gone (abandoned or reclaimed); nothing attached`)
  }
  const counts = new Map<number, number>()
  for (const row of r.rows) counts.set(Number(row['idx']), Number(row['len']) / SLICE_RECORD_BYTES)
  return { counts, ver: BigInt(r.rows[0]?.['ver'] as string) }
}
