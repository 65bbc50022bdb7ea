/*
 * Byte ranges as NLM v4 names them (offset, length; length 0 = to the end
 * of the file, RFC 1813 §6.1.4) and as the lock table keeps them ([start,
 * end), end LOCK_EOF for "to EOF": locks/types.ts). The POSIX arithmetic
 * of one owner's locks (a new lock replaces what it overlaps, an unlock
 * splits what it cuts, neighbours of one kind merge) is the lock table's
 * own (locks/ranges.ts): the client's record keeps what the server's
 * table would.
 */
import { carve, overlay } from '../../locks/ranges.ts'
import type { ModeRange } from '../../locks/ranges.ts'
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

/** One owner's range with its mode (locks/ranges.ts keeps such lists sorted, disjoint and merged). */
export type HeldRange = ModeRange

/** ranges minus cut: an unlock (split where the cut falls inside). */
export function subtract(ranges: readonly HeldRange[], cut: LockRange): HeldRange[] {
  return carve(ranges, cut)
}

/** One owner's ranges after it locks `add`: it replaces what it overlaps (an upgrade or downgrade in place), touching ranges of its kind merge. */
export function apply(ranges: readonly HeldRange[], add: HeldRange): HeldRange[] {
  return overlay(ranges, add)
}
