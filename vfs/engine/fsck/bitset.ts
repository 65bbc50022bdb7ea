/*
 * One bit per block or inode: the maps fsck computes cost n/8 bytes, so an
 * image of 2^32 blocks needs 512 MiB per map, never a number per block.
 */

export class BitSet {
  readonly size: number
  private readonly bits: Uint8Array

  constructor(size: number) {
    this.size = size
    this.bits = new Uint8Array(Math.ceil(size / 8))
  }

  get(i: number): boolean {
    return ((this.bits[Math.floor(i / 8)] ?? 0) & (1 << (i % 8))) !== 0
  }

  set(i: number): void {
    const at = Math.floor(i / 8)
    this.bits[at] = (this.bits[at] ?? 0) | (1 << (i % 8))
  }

  /** Set bit i and say whether it was already set. */
  testAndSet(i: number): boolean {
    const at = Math.floor(i / 8)
    const old = this.bits[at] ?? 0
    const mask = 1 << (i % 8)
    this.bits[at] = old | mask
    return (old & mask) !== 0
  }

  clone(): BitSet {
    const out = new BitSet(this.size)
    out.bits.set(this.bits)
    return out
  }
}
