/*
 * Block-sized buffers used again instead of freshly allocated. Fresh memory
 * is page-faulted in on first touch, and on this kind of machine that cost
 * several times the copy it was allocated for: a 256 MiB copy through fresh
 * 1 MiB buffers spent most of its system time faulting. The pool lends
 * slabs (READ records read straight from the socket, blocks a caller fills
 * to write), and takes them back only from whoever knows nothing refers to
 * them any more. A slab never given back is simply collected. Free slabs
 * are dropped once the pool has been idle for a while, so an idle client
 * holds none.
 */

/** Room for a 1 MiB READ or WRITE and its RPC and NFS headers. */
export const SLAB_SIZE = 1024 * 1024 + 64 * 1024
const IDLE_MS = 2000

export class BufferPool {
  readonly slabSize: number
  /** Free slabs kept at most: as many as a data path has lent at once (its dirty limit and read-ahead), so they all come back. */
  keep: number
  private free: ArrayBuffer[] = []
  private readonly lent = new WeakSet<ArrayBufferLike>()
  private idle: NodeJS.Timeout | null = null
  private used = false
  /** Slabs taken from the free list (tests and stats), and allocated. */
  reused = 0
  allocated = 0

  constructor(keep = 32, slabSize = SLAB_SIZE) {
    this.keep = keep
    this.slabSize = slabSize
  }

  /** n bytes (at most slabSize) at the start of a lent slab. */
  take(n: number): Buffer {
    if (n > this.slabSize) throw new RangeError(`${n} bytes do not fit a ${this.slabSize}-byte slab`)
    this.used = true
    let slab = this.free.pop()
    if (slab === undefined) {
      slab = new ArrayBuffer(this.slabSize)
      this.allocated++
    } else {
      this.reused++
    }
    this.lent.add(slab)
    return Buffer.from(slab, 0, n)
  }

  /** Whether `b` lies in a slab this pool lent and has not had back. */
  owns(b: Buffer): boolean {
    return this.lent.has(b.buffer)
  }

  /** Give back the slab `b` lies in; anything else (or a slab already given back) is ignored. */
  give(b: Buffer): void {
    const slab = b.buffer
    if (!this.lent.has(slab)) return
    this.lent.delete(slab)
    if (this.free.length < this.keep && slab instanceof ArrayBuffer) this.free.push(slab)
    this.idle ??= setTimeout(() => {
      this.trim()
    }, IDLE_MS).unref()
  }

  get freeSlabs(): number {
    return this.free.length
  }

  /** Drop the free slabs if nothing was taken since the last look. */
  private trim(): void {
    this.idle = null
    if (this.used) {
      this.used = false
      if (this.free.length > 0) this.idle = setTimeout(() => {
        this.trim()
      }, IDLE_MS).unref()
      return
    }
    this.free = []
  }
}
