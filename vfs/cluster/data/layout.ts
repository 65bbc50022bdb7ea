/*
 * Chunk and block sizes. The file system's are fixed (schema.ts: 64 MiB
 * chunks, 4 MiB blocks); tests pass small ones to cross boundaries with
 * small buffers. Every server of one file system must use the same.
 */
import { BLOCK_SIZE, CHUNK_SIZE } from '../schema.ts'

export interface DataLayout {
  chunkSize: number
  blockSize: number
}

export const DEFAULT_LAYOUT: DataLayout = { chunkSize: CHUNK_SIZE, blockSize: BLOCK_SIZE }

/** Chunk indexes are INTEGER columns. */
export const MAX_CHUNK_INDEX = 0x7fffffff

export function layoutOf(opts: { chunkSize?: number; blockSize?: number }): DataLayout {
  const chunkSize = opts.chunkSize ?? CHUNK_SIZE
  const blockSize = opts.blockSize ?? BLOCK_SIZE
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > 0xffffffff) throw new RangeError(`bad chunk size ${chunkSize}`)
  if (!Number.isSafeInteger(blockSize) || blockSize < 1 || blockSize > chunkSize) throw new RangeError(`bad block size ${blockSize}`)
  return { chunkSize, blockSize }
}
