/*
 * The transaction that makes uploaded slices part of a file: their records
 * are appended to the chunk rows, their reference rows created, their
 * pending rows deleted, the node's size and times set, and the change
 * announced — all or nothing (issue 17 §2: one transaction per operation).
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
import { notifyChanged } from '../change.ts'
import type { SqlTx } from '../sql.ts'
import { encodeSlices, SLICE_RECORD_BYTES, type SliceRecord } from './slice.ts'

export interface NewSlice {
  idx: number
  record: SliceRecord
}

export interface AttachArgs {
  sid: bigint
  inode: bigint
  slices: readonly NewSlice[]
  /** File offset just past the last byte written: the node's size becomes at least this. */
  end: bigint
  mtime: Timespec
}

/**
 * Append records to their chunks (insert rows that do not exist yet).
 * Returns each touched chunk's record count after the append.
 */
export async function appendRecords(tx: SqlTx, inode: bigint, slices: readonly NewSlice[]): Promise<Map<number, number>> {
  const byIdx = new Map<number, SliceRecord[]>()
  for (const s of slices) {
    const list = byIdx.get(s.idx) ?? []
    list.push(s.record)
    byIdx.set(s.idx, list)
  }
  const params: unknown[] = [inode]
  const rows = [...byIdx].map(([idx, recs]) => {
    params.push(idx, encodeSlices(recs))
    return `($1, $${params.length - 1}, $${params.length})`
  })
  // INSERT … ON CONFLICT on the primary key columns: the portable upsert (PostgreSQL, CockroachDB, YugabyteDB).
  const r = await tx.query(
    `INSERT INTO tsnfs_chunk (inode, idx, slices) VALUES ${rows.join(', ')}
     ON CONFLICT (inode, idx) DO UPDATE SET slices = tsnfs_chunk.slices || EXCLUDED.slices
     RETURNING idx, octet_length(slices) AS n`,
    params,
  )
  const counts = new Map<number, number>()
  for (const row of r.rows) counts.set(Number(row['idx']), Number(row['n']) / SLICE_RECORD_BYTES)
  return counts
}

export async function attachSlices(tx: SqlTx, a: AttachArgs): Promise<Map<number, number>> {
  const touched = await tx.query(
    `UPDATE tsnfs_node SET size = GREATEST(size, $2), mtime_sec = $3, mtime_nsec = $4, ctime_sec = $3, ctime_nsec = $4
     WHERE inode = $1`,
    [a.inode, a.end, a.mtime.sec, a.mtime.nsec],
  )
  // The file was removed (and its chunks released) while we uploaded: nothing to attach to.
  if (touched.rowCount === 0) throw new VfsError('ESTALE', `inode ${a.inode} is gone`)
  const counts = await appendRecords(tx, a.inode, a.slices)
  const ids = a.slices.filter((s) => s.record.id !== 0n)
  if (ids.length > 0) {
    const params: unknown[] = []
    const values = ids.map((s) => {
      params.push(s.record.id, s.record.size)
      return `($${params.length - 1}, $${params.length}, 1)`
    })
    await tx.query(`INSERT INTO tsnfs_slice_ref (id, size, refs) VALUES ${values.join(', ')}`, params)
    await tx.query(`DELETE FROM tsnfs_pending_slice WHERE id IN (${ids.map((_, i) => `$${i + 1}`).join(', ')})`, ids.map((s) => s.record.id))
  }
  await notifyChanged(tx, a.sid, [a.inode])
  return counts
}
