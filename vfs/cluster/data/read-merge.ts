/*
 * Merging a chunk's slice records into what a reader sees: later records
 * cover earlier ones where they overlap (newest on top). The result is a
 * list of segments in chunk order, each either a hole (zeros) or a range of
 * one slice object.
 */
import type { SliceRecord } from './slice.ts'

export interface Segment {
  /** Offset in the chunk. */
  pos: number
  len: number
  /** 0n for zeros (a hole or a zero slice). */
  id: bigint
  /** The slice object's length (0 for zeros). */
  size: number
  /** Offset into the slice object of the segment's first byte. */
  off: number
}

/**
 * Segments covering [start, end) of the chunk, in order, without gaps (holes
 * are id 0). Each record is laid over what is below it, splitting segments;
 * lists are short (compaction keeps them so), so the quadratic walk is fine.
 */
export function mergeSlices(records: readonly SliceRecord[], start: number, end: number): Segment[] {
  let segs: Segment[] = [{ pos: start, len: end - start, id: 0n, size: 0, off: 0 }]
  for (const r of records) {
    const a = Math.max(r.pos, start)
    const b = Math.min(r.pos + r.len, end)
    if (a >= b) continue
    const next: Segment[] = []
    for (const s of segs) {
      const sEnd = s.pos + s.len
      if (sEnd <= a || s.pos >= b) {
        next.push(s)
        continue
      }
      if (s.pos < a) next.push({ ...s, len: a - s.pos })
      if (sEnd > b) next.push({ ...s, pos: b, len: sEnd - b, off: s.id === 0n ? 0 : s.off + (b - s.pos) })
    }
    const top: Segment = r.id === 0n
      ? { pos: a, len: b - a, id: 0n, size: 0, off: 0 }
      : { pos: a, len: b - a, id: r.id, size: r.size, off: r.off + (a - r.pos) }
    // Keep chunk order: insert the new segment where it belongs.
    let i = 0
    while (i < next.length && (next[i]?.pos ?? 0) < a) i++
    next.splice(i, 0, top)
    segs = next
  }
  return segs
}

/** The range [first, last) of the chunk holding non-zero data, or null if it is all zeros. */
export function dataExtent(segs: readonly Segment[]): { start: number; end: number } | null {
  let start = -1
  let end = -1
  for (const s of segs) {
    if (s.id === 0n || s.len === 0) continue
    if (start < 0) start = s.pos
    end = s.pos + s.len
  }
  return start < 0 ? null : { start, end }
}
