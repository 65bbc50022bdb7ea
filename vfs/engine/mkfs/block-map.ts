/*
 * The in-use bit of every block while mkfs places metadata, with the search
 * libext2fs uses (ext2fs_get_free_blocks2): the first run of `num` free
 * blocks at or after `start`, wrapping to the first data block when the
 * search may wrap. Placing with the same search in the same order is what
 * puts every table, directory block and the journal where mke2fs puts them.
 */

export class BlockMap {
  readonly blocks: number
  readonly firstDataBlock: number
  readonly #bits: Uint8Array

  constructor(blocks: number, firstDataBlock: number) {
    this.blocks = blocks
    this.firstDataBlock = firstDataBlock
    this.#bits = new Uint8Array(Math.ceil(blocks / 8))
  }

  isUsed(b: number): boolean {
    return ((this.#bits[b >>> 3] ?? 0) & (1 << (b & 7))) !== 0
  }

  mark(b: number, n = 1): void {
    if (b < 0 || b + n > this.blocks) throw new RangeError(`blocks ${b}+${n} outside 0..${this.blocks - 1}`)
    for (let i = b; i < b + n; i++) this.#bits[i >>> 3] = (this.#bits[i >>> 3] ?? 0) | (1 << (i & 7))
  }

  /** The first used block in [b, b + n), or -1 when all are free. */
  firstUsed(b: number, n: number): number {
    for (let i = b; i < b + n; i++) {
      // Whole free bytes at once: the search crosses mostly empty groups.
      if ((i & 7) === 0 && i + 8 <= b + n && this.#bits[i >>> 3] === 0) {
        i += 7
        continue
      }
      if (this.isUsed(i)) return i
    }
    return -1
  }

  /** The first used-or-free (as `used`) block in [from, to), or -1. */
  findFirst(from: number, to: number, used: boolean): number {
    for (let i = from; i < to; i++) if (this.isUsed(i) === used) return i
    return -1
  }

  /**
   * ext2fs_get_free_blocks2: `num` free blocks starting at some b from `start` on; the search ends
   * (failing, -1) on reaching `finish`, and wraps to the first data block at the end of the file
   * system unless finish > start. Candidates that hold a used block are skipped past it at once.
   */
  getFree(start: number, finish: number, num: number): number {
    let b = start === 0 ? this.firstDataBlock : start
    const end = finish === 0 ? start : finish
    num = Math.max(1, num)
    let wrapped = false
    for (;;) {
      if (b + num - 1 >= this.blocks) {
        // A second wrap means the whole file system was searched.
        if (end > start || wrapped) return -1
        wrapped = true
        b = this.firstDataBlock
      }
      const used = this.firstUsed(b, num)
      if (used < 0) return b
      // Every candidate up to `used` overlaps it; stop where the plain loop would wrap or meet `end`.
      let next = used + 1
      const wrapAt = this.blocks - num + 1
      if (next > wrapAt && b + 1 <= wrapAt) next = Math.max(b + 1, wrapAt)
      if (b < end && end <= next) return -1
      b = next
    }
  }

  /** Blocks in use in [from, to). */
  countUsed(from: number, to: number): number {
    let n = 0
    for (let i = from; i < to; i++) {
      if ((i & 7) === 0 && i + 8 <= to) {
        let byte = this.#bits[i >>> 3] ?? 0
        while (byte !== 0) {
          n += byte & 1
          byte >>>= 1
        }
        i += 7
        continue
      }
      if (this.isUsed(i)) n++
    }
    return n
  }

  /** Copy the bits of [from, from + count) into out (bit 0 of byte 0 first); bits past the map read as 0. */
  copyBits(from: number, count: number, out: Uint8Array): void {
    for (let i = 0; i < count; i++) {
      const b = from + i
      if (b < this.blocks && this.isUsed(b)) out[i >>> 3] = (out[i >>> 3] ?? 0) | (1 << (i & 7))
    }
  }
}
