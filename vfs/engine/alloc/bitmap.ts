/*
 * Bit operations on block and inode bitmaps (one block each; bit i of byte i>>3 at position i&7,
 * little-endian as ext4 writes them, ext4_set_bit). Bits past the group's end up to the end of
 * the block are kept set, as the kernel's ext4_mark_bitmap_end does, so a search never finds them.
 */

export function testBit(map: Uint8Array, i: number): boolean {
  return ((map[i >>> 3] ?? 0xff) & (1 << (i & 7))) !== 0
}

export function setBits(map: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) map[i >>> 3] = (map[i >>> 3] ?? 0) | (1 << (i & 7))
}

export function clearBits(map: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) map[i >>> 3] = (map[i >>> 3] ?? 0) & ~(1 << (i & 7))
}

/** First clear bit in [from, to), or -1. Whole 0xff bytes are skipped. */
export function findClear(map: Uint8Array, from: number, to: number): number {
  let i = from
  while (i < to) {
    if ((i & 7) === 0 && map[i >>> 3] === 0xff) {
      i += 8
      continue
    }
    if (!testBit(map, i)) return i
    i++
  }
  return -1
}

/** Clear bits from i on, at most max of them (i itself clear). */
export function clearRun(map: Uint8Array, i: number, max: number, to: number): number {
  let n = 0
  while (n < max && i + n < to && !testBit(map, i + n)) n++
  return n
}

export function countClear(map: Uint8Array, bits: number): number {
  let n = 0
  for (let i = 0; i < bits; i++) if (!testBit(map, i)) n++
  return n
}

/** Bits are set in [start, end)? */
export function allSet(map: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!testBit(map, i)) return false
  return true
}

/** Bits are clear in [start, end)? */
export function allClear(map: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (testBit(map, i)) return false
  return true
}
