/*
 * Chunks lent to replies. A large READ returns a view of a stored chunk
 * rather than a copy; while the reply is being sent the chunk must not
 * change (writes copy it first) and must not be reused. Once the server has
 * sent the reply it releases the loan, and a chunk the file no longer uses
 * (the file was removed, truncated, or the chunk was copied on write) goes
 * back to the pool then: without that, every chunk a READ had touched was
 * lost to the pool, and the next file written after a read-back paid a page
 * fault per fresh page again.
 *
 * Weak collections only: a loan that is never released (the connection
 * closed before the reply went out) leaves the chunk to the garbage
 * collector with its last view, never a leak.
 */
/** Where a chunk goes once nothing uses it (chunk-store.ts). */
export interface ChunkSink {
  give(chunk: Buffer): void
}

export class Loans {
  readonly #out = new WeakMap<Buffer, number>()
  /** Chunks the file has let go of while they were on loan: pooled when the last loan ends. */
  readonly #dropped = new WeakSet<Buffer>()
  readonly #pool: ChunkSink

  constructor(pool: ChunkSink) {
    this.#pool = pool
  }

  /** One more loan of `chunk`; the returned function ends it (calling it again does nothing). */
  lend(chunk: Buffer): () => void {
    this.#out.set(chunk, (this.#out.get(chunk) ?? 0) + 1)
    let open = true
    return () => {
      if (!open) return
      open = false
      const n = (this.#out.get(chunk) ?? 1) - 1
      if (n > 0) {
        this.#out.set(chunk, n)
        return
      }
      this.#out.delete(chunk)
      if (this.#dropped.delete(chunk)) this.#pool.give(chunk)
    }
  }

  isLent(chunk: Buffer): boolean {
    return this.#out.has(chunk)
  }

  /** The file no longer uses `chunk`: to the pool now, or when its last loan ends. */
  drop(chunk: Buffer): void {
    if (this.#out.has(chunk)) this.#dropped.add(chunk)
    else this.#pool.give(chunk)
  }
}
