/*
 * Byte ranges as NLM v4 names them (offset, length; length 0 = to the end
 * of the file, RFC 1813 §6.1.4) and as the lock table keeps them ([start,
 * end), end LOCK_EOF for "to EOF": locks/types.ts), and the POSIX
 * arithmetic of one owner's locks on one file: a new lock replaces what it
 * overlaps, an unlock splits what it cuts, neighbours of one kind merge.
 */
import { LOCK_EOF } from '../../locks/types.ts'
import type { LockRange } from '../../locks/types.ts'
import { LockError } from './errors.ts'

const U64_MAX = LOCK_EOF - 1n

/** (offset, length) → [start, end); throws NLM_BAD_RANGE for a negative value or one that ends past 2^64. */
export function toRange(start: bigint | number, length: bigint | number): LockRange {
  const s = BigInt(start)
  const n = BigInt(length)
  if (s < 0n || n < 0n || s > U64_MAX) throw new LockError('NLM_BAD_RANGE', `lock range (${String(s)}, ${String(n)}) is negative or past 2^64`)
  if (n === 0n) return { start: s, end: LOCK_EOF }
  if (s + n > LOCK_EOF) throw new LockError('NLM_BAD_RANGE', `lock range (${String(s)}, ${String(n)}) ends past 2^64`)
  return { start: s, end: s + n }
}

/** [start, end) → NLM v4's offset and length (0 for a range that runs to LOCK_EOF). */
export function toWire(r: LockRange): { l_offset: bigint; l_len: bigint } {
  return { l_offset: r.start, l_len: r.end === LOCK_EOF ? 0n : r.end - r.start }
}

export interface HeldRange extends LockRange {
  readonly exclusive: boolean
}

/** Whether two ranges share a byte. */
export function overlaps(a: LockRange, b: LockRange): boolean {
  return a.start < b.end && b.start < a.end
}

/** ranges minus [cut.start, cut.end): what lies outside the cut, split where the cut falls inside one. */
export function subtract(ranges: readonly HeldRange[], cut: LockRange): HeldRange[] {
  const out: HeldRange[] = []
  for (const r of ranges) {
    if (!overlaps(r, cut)) {
      out.push(r)
      continue
    }
    if (r.start < cut.start) out.push({ start: r.start, end: cut.start, exclusive: r.exclusive })
    if (cut.end < r.end) out.push({ start: cut.end, end: r.end, exclusive: r.exclusive })
  }
  return out
}

/** One owner's ranges after it locks `add`: it replaces what it overlaps (an upgrade or downgrade in place), touching ranges of its kind merge. Sorted by start. */
export function apply(ranges: readonly HeldRange[], add: HeldRange): HeldRange[] {
  const rest = subtract(ranges, add)
  let merged: HeldRange = add
  const out: HeldRange[] = []
  for (const r of rest) {
    if (r.exclusive === merged.exclusive && r.end >= merged.start && r.start <= merged.end) {
      merged = { start: r.start < merged.start ? r.start : merged.start, end: r.end > merged.end ? r.end : merged.end, exclusive: merged.exclusive }
    } else {
      out.push(r)
    }
  }
  out.push(merged)
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
}
