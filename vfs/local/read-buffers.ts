/*
 * Buffers for READ data, reused. A fresh 1 MiB buffer per READ is fresh
 * memory: page faults to touch it and garbage collections to free it
 * (LIMITS.md: allocation plus copy runs at a fraction of a copy into a
 * preallocated buffer). The data is lent to the server, which sends it by
 * reference and calls the loan's release once the reply has been written
 * (Vfs.read's ReadResult.release); only then does the buffer come back. A
 * loan never released (the connection closed first, UDP) just leaves its
 * buffer to the garbage collector.
 */

export interface ReadBuffer {
  readonly buf: Buffer
  /** Gives the buffer back (at most once; later calls do nothing); null: not from the pool. */
  readonly release: (() => void) | null
}

export class ReadBuffers {
  readonly #size: number
  readonly #max: number
  readonly #free: Buffer[] = []

  /** Buffers of `size` bytes; at most `max` idle ones are kept. */
  constructor(size: number, max: number) {
    this.#size = size
    this.#max = max
  }

  /** Idle buffers kept (for tests). */
  get idle(): number {
    return this.#free.length
  }

  /**
   * A buffer of at least `count` bytes (uninitialised: the caller fills what it returns). Small
   * reads get their own small buffer: a pooled one would cost a whole buffer whenever the loan
   * is not released.
   */
  take(count: number): ReadBuffer {
    if (count > this.#size || count <= this.#size / 2) return { buf: Buffer.allocUnsafe(count), release: null }
    const buf = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size)
    let lent = true
    return {
      buf,
      release: () => {
        if (!lent) return
        lent = false
        if (this.#free.length < this.#max) this.#free.push(buf)
      },
    }
  }
}
