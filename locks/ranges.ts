/*
 * Byte-range arithmetic for one owner's locks on one file. A list is sorted
 * by start, its ranges are disjoint, and no two ranges of the same mode touch
 * (they would have been merged): POSIX keeps one process's locks that way, so
 * the answer to "what does this owner hold" has one spelling and the limits
 * count real ranges, not leftovers of how they were taken.
 */
import { LOCK_EOF, type LockRange } from './types.ts'

/** A range with its mode: exclusive (write) or shared (read). */
export interface ModeRange extends LockRange {
  readonly exclusive: boolean
}

/**
 * Throws unless 0 <= start < end <= LOCK_EOF. An empty or reversed range is a
 * caller's bug (the NLM layer turns length 0 into LOCK_EOF and rejects
 * overflow before it gets here), so it is an error, not a status.
 */
export function checkRange(r: LockRange): void {
  if (!(r.start >= 0n && r.start < r.end && r.end <= LOCK_EOF)) {
    throw new RangeError(`lock range [${String(r.start)}, ${String(r.end)}) is not a non-empty range within [0, 2^64]`)
  }
}

export function overlaps(a: LockRange, b: LockRange): boolean {
  return a.start < b.end && b.start < a.end
}

/** Overlapping or adjacent: [0,5) and [5,9) touch, so same-mode locks on them merge. */
export function touches(a: LockRange, b: LockRange): boolean {
  return a.start <= b.end && b.start <= a.end
}

/** The parts of `a` outside `cut`: none, one, or two when `cut` lies strictly inside. */
export function subtract(a: ModeRange, cut: LockRange): ModeRange[] {
  if (!overlaps(a, cut)) return [a]
  const out: ModeRange[] = []
  if (a.start < cut.start) out.push({ start: a.start, end: cut.start, exclusive: a.exclusive })
  if (cut.end < a.end) out.push({ start: cut.end, end: a.end, exclusive: a.exclusive })
  return out
}

/** `list` without the bytes of `cut` (an unlock): ranges split where `cut` falls inside them. */
export function carve(list: readonly ModeRange[], cut: LockRange): ModeRange[] {
  const out: ModeRange[] = []
  for (const r of list) {
    if (overlaps(r, cut)) out.push(...subtract(r, cut))
    else out.push(r)
  }
  return out
}

/**
 * `list` with `r` laid over it (a lock by the same owner): r's bytes take r's
 * mode whatever they had (upgrade and downgrade in place), a range of the
 * other mode is cut back to what lies outside r, and ranges of r's mode that
 * overlap or touch r are absorbed into it. Since the list was already merged,
 * nothing beyond those neighbours can touch the result.
 */
export function overlay(list: readonly ModeRange[], r: ModeRange): ModeRange[] {
  const out: ModeRange[] = []
  let start = r.start
  let end = r.end
  for (const x of list) {
    if (!touches(x, r)) out.push(x)
    else if (x.exclusive === r.exclusive) {
      if (x.start < start) start = x.start
      if (x.end > end) end = x.end
    } else out.push(...subtract(x, r))
  }
  // The merged range is disjoint from everything kept, so its place is fixed by its start.
  let i = 0
  while (i < out.length && (out[i]?.start ?? LOCK_EOF) < start) i++
  out.splice(i, 0, { start, end, exclusive: r.exclusive })
  return out
}

/** Whether laying `r` over `list` turns exclusive bytes shared: waiters may then be granted. */
export function downgrades(list: readonly ModeRange[], r: ModeRange): boolean {
  return !r.exclusive && list.some((x) => x.exclusive && overlaps(x, r))
}
