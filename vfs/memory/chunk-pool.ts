/*
 * Free full-size chunks, kept for reuse. Storing new data in RAM costs a
 * page fault per fresh page (LIMITS.md: fresh memory faults in at 0.4–2.6
 * GB/s) and grows V8's external memory, which triggers collections; a chunk
 * freed by a remove or truncate is already faulted in. Bounded, so memory
 * freed by removals is given back to the system beyond the cap.
 */
export class ChunkPool {
  readonly #free: Buffer[] = []
  readonly #max: number
  readonly #size: number

  constructor(chunkSize: number, maxChunks: number) {
    this.#size = chunkSize
    this.#max = maxChunks
  }

  get available(): number {
    return this.#free.length
  }

  /** A chunk with unspecified contents, or undefined when the pool is empty. */
  take(): Buffer | undefined {
    return this.#free.pop()
  }

  /** Keep a chunk nobody else references any more (never one lent to a reply). */
  give(chunk: Buffer): void {
    if (chunk.length === this.#size && this.#free.length < this.#max) this.#free.push(chunk)
  }
}
