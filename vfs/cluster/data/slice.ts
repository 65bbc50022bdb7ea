/*
 * A chunk's slice list (tsnfs_chunk.slices): 24-byte records, oldest first,
 * appended with `slices || $x` so a write never rewrites what is there (the
 * layout of JuiceFS's pkg/meta/sql.go, our own code). A record places the
 * bytes [off, off + len) of slice `id` (whose object is `size` bytes long)
 * at `pos` in the chunk. Id 0 is no object: those bytes read as zeros
 * (truncation writes such records).
 */
import { VfsError } from '../../errors.ts'

export const SLICE_RECORD_BYTES = 24

export interface SliceRecord {
  /** Offset in the chunk where these bytes go. */
  pos: number
  /** Slice id (0: zeros). */
  id: bigint
  /** The slice object's whole length. */
  size: number
  /** Offset into the slice of the first byte used. */
  off: number
  /** Bytes used. */
  len: number
}

export function encodeSlices(records: readonly SliceRecord[]): Buffer {
  const b = Buffer.allocUnsafe(records.length * SLICE_RECORD_BYTES)
  records.forEach((r, i) => {
    const o = i * SLICE_RECORD_BYTES
    b.writeUInt32BE(r.pos, o)
    b.writeBigUInt64BE(r.id, o + 4)
    b.writeUInt32BE(r.size, o + 12)
    b.writeUInt32BE(r.off, o + 16)
    b.writeUInt32BE(r.len, o + 20)
  })
  return b
}

/** Records of a chunk row; a row whose length is not a whole number of records is corrupt (EIO). */
export function decodeSlices(b: Buffer, where = 'chunk'): SliceRecord[] {
  if (b.length % SLICE_RECORD_BYTES !== 0) {
    throw new VfsError('EIO', `${where}: slice list of ${b.length} bytes is not a multiple of ${SLICE_RECORD_BYTES}`)
  }
  const out: SliceRecord[] = []
  for (let o = 0; o < b.length; o += SLICE_RECORD_BYTES) {
    const r: SliceRecord = {
      pos: b.readUInt32BE(o),
      id: b.readBigUInt64BE(o + 4),
      size: b.readUInt32BE(o + 12),
      off: b.readUInt32BE(o + 16),
      len: b.readUInt32BE(o + 20),
    }
    if (r.id !== 0n && r.off + r.len > r.size) {
      throw new VfsError('EIO', `${where}: slice ${r.id} record [${r.off}, +${r.len}) is past its size ${r.size}`)
    }
    out.push(r)
  }
  return out
}

/** How many records of each slice id (0 excluded) a list holds: the references it owns. */
export function countRefs(records: readonly SliceRecord[], into = new Map<bigint, number>()): Map<bigint, number> {
  for (const r of records) {
    if (r.id !== 0n) into.set(r.id, (into.get(r.id) ?? 0) + 1)
  }
  return into
}
