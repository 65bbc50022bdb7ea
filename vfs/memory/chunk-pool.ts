/*
 * Free full-size buffers, kept for reuse. Storing new data in RAM costs a
 * page fault per fresh page (fresh memory faults in at 0.4–2.6 GB/s) and
 * grows V8's external memory, which triggers collections; a buffer freed by
 * a remove or truncate is already faulted in. Bounded in bytes, so memory
 * freed beyond the cap goes back to the system; and trim() (called by the
 * owner once the server has been idle a while) lets go of everything above
 * the floor, so a burst of large files does not stay resident for good.
 * The memory backend keeps its freed chunks here; the local backend's READ
 * buffers (memory/read-buffers.ts) are one too.
 */
export interface PoolLimits {
  /** Free bytes kept (whole buffers); a buffer given back beyond it is dropped. */
  maxBytes: number
  /** What trim() keeps (default 0). */
  floorBytes?: number
}

export class ChunkPool {
  #free: Buffer[] = []
  readonly #max: number
  readonly #floor: number
  readonly #size: number
  /** Buffers asked for when none was free. */
  misses = 0

  constructor(chunkSize: number, limits: PoolLimits) {
    this.#size = chunkSize
    this.#max = Math.floor(limits.maxBytes / chunkSize)
    this.#floor = Math.min(this.#max, Math.floor((limits.floorBytes ?? 0) / chunkSize))
  }

  /** Size of each buffer. */
  get chunkSize(): number {
    return this.#size
  }

  get available(): number {
    return this.#free.length
  }

  /** Bytes of free buffers held. */
  get bytes(): number {
    return this.#free.length * this.#size
  }

  /** A chunk with unspecified contents, or undefined when the pool is empty. */
  take(): Buffer | undefined {
    const b = this.#free.pop()
    if (b === undefined) this.misses++
    return b
  }

  /** Keep a chunk nobody else references any more (never one lent to a reply). */
  give(chunk: Buffer): void {
    if (chunk.length === this.#size && this.#free.length < this.#max) this.#free.push(chunk)
  }

  /** Keep only the floor; returns the bytes let go (the garbage collector frees them once unreferenced). */
  trim(): number {
    const dropped = this.#free.length - this.#floor
    if (dropped <= 0) return 0
    this.#free = this.#free.slice(0, this.#floor)
    return dropped * this.#size
  }
}
