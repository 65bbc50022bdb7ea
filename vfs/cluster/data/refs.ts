/*
 * Slice reference counts (tsnfs_slice_ref.refs = how many chunk records name
 * the slice) and the bytes they account for (COUNTER.usedBytes). A slice
 * whose count reaches 0 keeps its row, at 0, until its blocks are deleted
 * after the commit (reapZeroRefs): a crash in between leaves a row at 0 that
 * gc finishes, never a referenced slice without blocks.
 */
import type { ObjectStore } from '../object-store.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import { countRefs, decodeSlices } from './slice.ts'
import { deleteSliceBlocks } from './upload.ts'

const BATCH = 500

/** Take `counts` references away; slices reaching 0 stop counting in usedBytes. Returns the slices now at 0. */
export async function decrementRefs(tx: SqlTx, counts: ReadonlyMap<bigint, number>): Promise<bigint[]> {
  const entries = [...counts]
  const zero: bigint[] = []
  let freed = 0
  for (let i = 0; i < entries.length; i += BATCH) {
    const part = entries.slice(i, i + BATCH)
    const params: unknown[] = []
    const values = part.map(([id, n]) => {
      params.push(id, n)
      return `($${params.length - 1}::BIGINT, $${params.length}::INTEGER)`
    })
    // UPDATE … FROM (VALUES …) runs on PostgreSQL, CockroachDB and YugabyteDB alike.
    const r = await tx.query(
      `UPDATE tsnfs_slice_ref AS r SET refs = r.refs - v.n FROM (VALUES ${values.join(', ')}) AS v(id, n)
       WHERE r.id = v.id RETURNING r.id, r.refs, r.size`,
      params,
    )
    for (const row of r.rows) {
      if (Number(row['refs']) <= 0) {
        zero.push(BigInt(row['id'] as string))
        freed += Number(row['size'])
      }
    }
  }
  if (freed > 0) await tx.query('UPDATE tsnfs_counter SET value = value - $2 WHERE name = $1', [COUNTER.usedBytes, freed])
  return zero
}

/** Delete the inode's chunk rows from index `fromIdx` on and drop their references. Returns the slices now at 0. */
export async function releaseChunks(tx: SqlTx, inode: bigint, fromIdx = 0): Promise<bigint[]> {
  const r = await tx.query('DELETE FROM tsnfs_chunk WHERE inode = $1 AND idx >= $2 RETURNING idx, slices', [inode, fromIdx])
  const counts = new Map<bigint, number>()
  for (const row of r.rows) countRefs(decodeSlices(row['slices'] as Buffer, `inode ${inode} chunk ${String(row['idx'])}`), counts)
  return counts.size === 0 ? [] : decrementRefs(tx, counts)
}

/**
 * Delete the blocks, then the rows, of up to `limit` slices at refs 0.
 * Blocks go first: a crash between leaves a row that the next pass (or gc)
 * finishes. Returns how many slices and blocks were removed.
 */
export async function reapZeroRefs(db: SqlDb, store: ObjectStore, blockSize: number, limit = 1000): Promise<{ slices: number; blocks: number; bytes: number }> {
  const r = await db.query('SELECT id, size FROM tsnfs_slice_ref WHERE refs <= 0 LIMIT $1', [limit])
  const slices = r.rows.map((row) => ({ id: BigInt(row['id'] as string), size: Number(row['size']) }))
  if (slices.length === 0) return { slices: 0, blocks: 0, bytes: 0 }
  const blocks = await deleteSliceBlocks(store, slices, blockSize)
  await db.query(`DELETE FROM tsnfs_slice_ref WHERE refs <= 0 AND id IN (${slices.map((_, i) => `$${i + 1}`).join(', ')})`, slices.map((s) => s.id))
  return { slices: slices.length, blocks, bytes: slices.reduce((a, s) => a + s.size, 0) }
}
