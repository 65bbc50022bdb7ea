/*
 * Buffers for READ data, reused. A fresh 1 MiB buffer per READ is fresh
 * memory: page faults to touch it and garbage collections to free it
 * (allocation plus copy runs at a fraction of a copy into a preallocated
 * buffer). The data is lent to the server, which sends it by
 * reference and calls the loan's release once the reply has been written
 * (Vfs.read's ReadResult.release); only then does the buffer come back. A
 * loan never released (the connection closed first, UDP) just leaves its
 * buffer to the garbage collector.
 */
import { ChunkPool } from './chunk-pool.ts'
import type { PoolLimits } from './chunk-pool.ts'

/** A READ's largest usual size (clients ask rtpref, 1 MiB): pooled buffers are this big. */
export const READ_BUFFER_SIZE = 1024 * 1024
/** Idle read buffers a backend keeps by itself, when the server gives it no shared pool. */
export const DEFAULT_READ_POOL_BYTES = 32 * 1024 * 1024

export interface ReadBuffer {
  readonly buf: Buffer
  /** Gives the buffer back (at most once; later calls do nothing); null: not from the pool. */
  readonly release: (() => void) | null
}

export class ReadBuffers {
  readonly #pool: ChunkPool

  /** Buffers of `size` bytes; at most `limits.maxBytes` of idle ones are kept, `floorBytes` after trim(). */
  constructor(size: number, limits: PoolLimits) {
    this.#pool = new ChunkPool(size, limits)
  }

  /** Idle buffers kept (for tests). */
  get idle(): number {
    return this.#pool.available
  }

  /** Bytes of idle buffers kept. */
  get bytes(): number {
    return this.#pool.bytes
  }

  /** Let go of the idle buffers above the floor (the server calls it when idle); returns the bytes. */
  trim(): number {
    return this.#pool.trim()
  }

  /**
   * A buffer of at least `count` bytes (uninitialised: the caller fills what it returns). Small
   * reads get their own small buffer: a pooled one would cost a whole buffer whenever the loan
   * is not released.
   */
  take(count: number): ReadBuffer {
    const size = this.#pool.chunkSize
    if (count > size || count <= size / 2) return { buf: Buffer.allocUnsafe(count), release: null }
    const buf = this.#pool.take() ?? Buffer.allocUnsafeSlow(size)
    let lent = true
    return {
      buf,
      release: () => {
        if (!lent) return
        lent = false
        this.#pool.give(buf)
      },
    }
  }
}
