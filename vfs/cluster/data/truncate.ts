/*
 * Shrinking a file in the caller's transaction. Chunks wholly past the new
 * size are deleted (their slices lose a reference); in the chunk the new
 * size falls in, a zero record (id 0) covers [newSize, chunk end), so bytes
 * written there before read as zeros if the file grows again (POSIX: the
 * extended part reads as zeros). Growing needs nothing: nothing is stored
 * past the size, since every shrink left zeros or no chunk behind it.
 */
import type { SqlTx } from '../sql.ts'
import { MAX_CHUNK_INDEX, type DataLayout } from './layout.ts'
import { releaseChunks } from './refs.ts'
import { encodeSlices } from './slice.ts'

/** Returns the slices whose references reached 0 (their blocks go after the commit). */
export async function truncateChunks(tx: SqlTx, inode: bigint, oldSize: bigint, newSize: bigint, layout: DataLayout): Promise<bigint[]> {
  if (newSize >= oldSize) return []
  const cs = BigInt(layout.chunkSize)
  const firstDropped = (newSize + cs - 1n) / cs
  const zero = firstDropped > BigInt(MAX_CHUNK_INDEX) ? [] : await releaseChunks(tx, inode, Number(firstDropped))
  const pos = Number(newSize % cs)
  if (pos !== 0) {
    const len = layout.chunkSize - pos
    await tx.query('UPDATE tsnfs_chunk SET slices = slices || $3 WHERE inode = $1 AND idx = $2', [
      inode,
      Number(newSize / cs),
      encodeSlices([{ pos, id: 0n, size: len, off: 0, len }]),
    ])
  }
  return zero
}
