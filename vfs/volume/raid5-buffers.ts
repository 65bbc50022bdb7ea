/**
 * Buffers a RAID-5 fills for one member write (a run of whole stripes gathered per member), kept
 * for the next run instead of allocated each time. A fresh buffer of half a MiB is fresh memory:
 * the copy into it paid a page fault per 4 KiB, and that copy was the layer's largest cost
 * (a CPU profile of a 256 MiB sequential write straight into the volume: 14 % of the process in
 * the gathering copy, 8 % in the garbage collector, against 5 % for the XOR). Each buffer
 * is 8-byte aligned (a whole ArrayBuffer of its own), so the XOR over it runs in 64-bit lanes.
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
