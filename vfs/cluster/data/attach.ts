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
 */
export interface Attached {
  /** Records per chunk touched, after the attach (the caller compacts long lists). */
  counts: Map<number, number>
  /** The node's version the attach took it to (named in its notification). */
  ver: bigint
}

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
  const refs = ids.length === 0 ? '' : `,
r AS (
  INSERT INTO tsnfs_slice_ref (id, size, refs)
  SELECT v.id, v.size, 1 FROM n, (VALUES ${refRows.join(', ')}) AS v(id, size)
),
p AS (
  DELETE FROM tsnfs_pending_slice WHERE id IN (SELECT v.id FROM n, (VALUES ${refRows.join(', ')}) AS v(id, size))
)`
  // The notification's parameters come last, and only when one is sent (an unused $n has no type).
  // Its payload is built from n's row, so it names the version the UPDATE reached.
  if (a.sid !== null) params.push(CHANGE_CHANNEL, a.sid)
  const notify = a.sid === null ? '' : `, pg_notify($${params.length - 1}, ${payloadSql(`$${params.length}`, ['n'])}) AS notified`
  const r = await db.query(
    `WITH n AS (
  UPDATE tsnfs_node SET size = GREATEST(size, $2), mtime_sec = $3, mtime_nsec = $4, ctime_sec = $3, ctime_nsec = $4,
    used = used + $5::bigint, ver = ver + 1
  WHERE inode = $1 RETURNING inode, ver
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
  // The file was removed (and its chunks released) while we uploaded: nothing to attach to.
  if (r.rowCount === 0) throw new VfsError('ESTALE', `inode ${a.inode} is gone`)
  const counts = new Map<number, number>()
  for (const row of r.rows) counts.set(Number(row['idx']), Number(row['len']) / SLICE_RECORD_BYTES)
  return { counts, ver: BigInt(r.rows[0]?.['ver'] as string) }
}
