/**
 * Buffers a RAID-5 rebuild step fills (the other members' units it reads, the units it writes)
 * and the parity of a run of whole stripes (write-path.ts), kept for the next step or write
 * instead of allocated each time: a fresh buffer is fresh memory, and the
 * copy into it pays a page fault per 4 KiB (in a profile of whole-stripe writes that gathered into
 * fresh buffers: 14 % of the process in the copy, 8 % in the collector). Each buffer is 8-byte
 * aligned (a whole ArrayBuffer of its own), so the XOR over it runs in 64-bit lanes.
 */
export class RunBuffers {
  readonly #free = new Map<number, Buffer[]>()
  readonly #maxBytes: number
  #kept = 0

  /** Keeps at most `maxBytes` of free buffers; more given back are left to the collector. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  /** A buffer of exactly `size` bytes holding anything. */
  take(size: number): Buffer {
    const buf = this.#free.get(size)?.pop()
    if (buf === undefined) return Buffer.allocUnsafeSlow(size)
    this.#kept -= size
    return buf
  }

  /** Hands back buffers no write holds any more. */
  give(bufs: readonly Buffer[]): void {
    for (const buf of bufs) {
      if (this.#kept + buf.length > this.#maxBytes) return
      const list = this.#free.get(buf.length) ?? []
      list.push(buf)
      this.#free.set(buf.length, list)
      this.#kept += buf.length
    }
  }

  /** Bytes held free now (for tests). */
  get keptBytes(): number {
    return this.#kept
  }
}
