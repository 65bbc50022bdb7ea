/*
 * Where a slice's blocks live in the object store:
 * `chunks/<id % 256 as 2 hex digits>/<id>_<block index>_<block length>`.
 * The two-digit prefix spreads keys over 256 prefixes (S3 partitions by key
 * prefix); the length in the name lets gc and fsck check a block without
 * the database. A slice of `size` bytes has ceil(size / blockSize) blocks,
 * all `blockSize` long but the last.
 */

export const BLOCK_PREFIX = 'chunks/'

export function blockKey(id: bigint, index: number, len: number): string {
  const dir = (id % 256n).toString(16).padStart(2, '0')
  return `${BLOCK_PREFIX}${dir}/${id}_${index}_${len}`
}

export interface BlockName {
  id: bigint
  index: number
  len: number
}

/** `null` for a key not in the block layout (gc leaves those alone; fsck reports them). */
export function parseBlockKey(key: string): BlockName | null {
  const m = /^chunks\/([0-9a-f]{2})\/(\d{1,20})_(\d{1,10})_(\d{1,10})$/.exec(key)
  if (m === null) return null
  const id = BigInt(m[2] ?? '0')
  if (id >= 1n << 64n || (id % 256n).toString(16).padStart(2, '0') !== m[1]) return null
  return { id, index: Number(m[3]), len: Number(m[4]) }
}

/** Length of block `index` of a slice of `size` bytes. */
export function blockLength(size: number, index: number, blockSize: number): number {
  return Math.min(blockSize, size - index * blockSize)
}

/** Every block key of a slice of `size` bytes. */
export function sliceKeys(id: bigint, size: number, blockSize: number): string[] {
  const keys: string[] = []
  for (let i = 0; i * blockSize < size; i++) keys.push(blockKey(id, i, blockLength(size, i, blockSize)))
  return keys
}
