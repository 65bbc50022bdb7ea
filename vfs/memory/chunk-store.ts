/*
 * Where file chunks come from and go back to. Full 1 MiB chunks are reused
 * through the pool (chunk-pool.ts). Small chunks (a small file, the tail of
 * one: 4 KiB steps up to SLAB_MAX) are slots packed into 1 MiB slabs taken
 * from that same pool, one slab per slot size: each small chunk a malloc of
 * its own would leave the process heap full of holes once the files are
 * removed (glibc gives back only the top of its heap), where an emptied slab
 * goes back to the pool as a whole, and from there to the system when the
 * server trims its pools. A slab with one live slot keeps its whole 1 MiB;
 * slabs with room are filled before another is taken.
 */
import type { ChunkPool } from './chunk-pool.ts'

/** Chunks up to this size are slab slots; larger ones are buffers of their own. */
export const SLAB_MAX = 64 * 1024
const SLOT_STEP = 4096

interface Slab {
  readonly mem: Buffer
  readonly slotSize: number
  /** Free slot indexes. */
  readonly free: number[]
  live: number
}

export class ChunkStore {
  readonly pool: ChunkPool
  /** Slabs by their memory, to find a slot's slab. */
  readonly #slabs = new Map<ArrayBufferLike, Slab>()
  /** Slabs with a free slot, per slot size. */
  readonly #open = new Map<number, Set<Slab>>()

  constructor(pool: ChunkPool) {
    this.pool = pool
  }

  /** Bytes of the slabs in use (their free slots included). */
  get slabBytes(): number {
    return this.#slabs.size * this.pool.chunkSize
  }

  /** A chunk of exactly `size` bytes (a multiple of 4 KiB up to the pool's chunk size), contents unspecified. */
  take(size: number): Buffer {
    const full = this.pool.chunkSize
    if (size === full) return this.pool.take() ?? Buffer.allocUnsafeSlow(full)
    if (size > SLAB_MAX || size % SLOT_STEP !== 0) return Buffer.allocUnsafeSlow(size)
    let open = this.#open.get(size)
    if (open === undefined) {
      open = new Set()
      this.#open.set(size, open)
    }
    let slab: Slab | undefined = open.values().next().value
    if (slab === undefined) {
      const mem = this.pool.take() ?? Buffer.allocUnsafeSlow(full)
      const slots = Math.floor(full / size)
      // Popped from the end: slot 0 first.
      slab = { mem, slotSize: size, free: Array.from({ length: slots }, (_, i) => slots - 1 - i), live: 0 }
      this.#slabs.set(mem.buffer, slab)
      open.add(slab)
    }
    const slot = slab.free.pop() ?? 0
    slab.live++
    if (slab.free.length === 0) open.delete(slab)
    return slab.mem.subarray(slot * size, slot * size + size)
  }

  /** A chunk nobody references any more (never one lent to a reply): its slot, or the whole chunk, for reuse. */
  give(chunk: Buffer): void {
    const slab = this.#slabs.get(chunk.buffer)
    if (slab === undefined) {
      this.pool.give(chunk)
      return
    }
    const slot = chunk.byteOffset / slab.slotSize
    if (chunk.length !== slab.slotSize || !Number.isInteger(slot)) throw new Error('ChunkStore.give: not a slot of this store')
    slab.free.push(slot)
    slab.live--
    const open = this.#open.get(slab.slotSize)
    if (slab.live === 0) {
      open?.delete(slab)
      this.#slabs.delete(chunk.buffer)
      this.pool.give(slab.mem)
      return
    }
    if (slab.free.length === 1) open?.add(slab)
  }
}
