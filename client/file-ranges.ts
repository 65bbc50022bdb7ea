/*
 * Half-open byte ranges [start, end) of a file, as sorted, merged lists: the
 * dirty parts of a block, the parts of a segment that newer writes replaced.
 * Offsets are numbers: a file of 2^53 bytes is beyond any server we meet, and
 * the wire (bigint offset3) is converted at the call.
 */

export interface Range {
  start: number
  end: number
}

/** Add [start, end) to a sorted, merged list; returns how many bytes were new. */
export function addRange(list: Range[], start: number, end: number): number {
  if (end <= start) return 0
  let covered = 0
  let s = start
  let e = end
  let i = 0
  while (i < list.length && (list[i] as Range).end < s) i++
  let j = i
  while (j < list.length && (list[j] as Range).start <= e) {
    const r = list[j] as Range
    covered += Math.max(0, Math.min(r.end, end) - Math.max(r.start, start))
    s = Math.min(s, r.start)
    e = Math.max(e, r.end)
    j++
  }
  list.splice(i, j - i, { start: s, end: e })
  return end - start - covered
}

/** Remove [start, end) from a sorted, merged list; returns how many bytes went. */
export function cutRange(list: Range[], start: number, end: number): number {
  if (end <= start) return 0
  let removed = 0
  const out: Range[] = []
  for (const r of list) {
    if (r.end <= start || r.start >= end) {
      out.push(r)
      continue
    }
    removed += Math.min(r.end, end) - Math.max(r.start, start)
    if (r.start < start) out.push({ start: r.start, end: start })
    if (r.end > end) out.push({ start: end, end: r.end })
  }
  list.splice(0, list.length, ...out)
  return removed
}

/** The parts of [start, end) that no range of a sorted list covers. */
export function gapsOf(list: readonly Range[], start: number, end: number): Range[] {
  const out: Range[] = []
  let at = start
  for (const r of list) {
    if (r.end <= at) continue
    if (r.start >= end) break
    if (r.start > at) out.push({ start: at, end: r.start })
    at = Math.max(at, r.end)
  }
  if (at < end) out.push({ start: at, end })
  return out
}

export function overlaps(a: Range, b: Range): boolean {
  return a.start < b.end && b.start < a.end
}
