/*
 * Sparse file contents: fixed-size chunks in a Map keyed by chunk index.
 * A missing chunk is a hole and reads as zeros. A chunk's Buffer may be
 * shorter than CHUNK_SIZE (small files stay small); the bytes past its end
 * read as zeros too. Sizes and offsets are bigint (up to 2^63-1); a chunk
 * index is at most 2^43, so it fits a number.
 *
 * Reads of 32 KiB or more that lie in one chunk return a view of it, not a copy (a 1 MiB READ
 * then goes to the socket by reference). A chunk that has been lent out that
 * way is never modified again: the next write to it replaces it with a copy
 * (copy on write), so a reply still being sent keeps the bytes it was given;
 * the old chunk returns to the pool when the loan ends (loans.ts). Chunks
 * come from a ChunkStore (chunk-store.ts): full ones through the pool, small
 * ones as slots of shared slabs.
 */

import { ChunkPool } from './chunk-pool.ts'
import { ChunkStore } from './chunk-store.ts'
import { Loans } from './loans.ts'

/** 1 MiB: a whole rsize/wsize READ or WRITE touches one chunk. */
export const CHUNK_SIZE = 1024 * 1024
const CHUNK = BigInt(CHUNK_SIZE)
/** Chunk buffers grow to a multiple of this, and at least double, so appends do not reallocate per write. */
const GROW_STEP = 4096

/** Freed chunks kept for reuse by files given no pool of their own (MemoryVfsOptions.chunkPool): up to 256 MiB. */
export const DEFAULT_CHUNK_POOL_BYTES = 256 * 1024 * 1024
const sharedPool = new ChunkPool(CHUNK_SIZE, { maxBytes: DEFAULT_CHUNK_POOL_BYTES })
/** One store and one Loans per pool, shared by every file using it: a chunk goes back where it came from. */
const byPool = new WeakMap<ChunkPool, { store: ChunkStore; loans: Loans }>()

/** The store of chunks (full ones and slabs) over `pool`. */
export function chunkStoreOf(pool: ChunkPool): { store: ChunkStore; loans: Loans } {
  let s = byPool.get(pool)
  if (s === undefined) {
    const store = new ChunkStore(pool)
    s = { store, loans: new Loans(store) }
    byPool.set(pool, s)
  }
  return s
}

/** Smaller reads are copied: cheap, and a 4 KiB read then never costs a chunk copy on the next write. */
const VIEW_FROM = 32 * 1024

function roundUp(n: number): number {
  return Math.min(CHUNK_SIZE, Math.ceil(n / GROW_STEP) * GROW_STEP)
}

/** The buffer length a chunk of length `have` needs to take bytes up to `end`. */
function needed(have: number, end: number): number {
  if (end <= have) return have
  return Math.min(CHUNK_SIZE, Math.max(roundUp(end), have * 2))
}

/** A file's contents frozen at one instant (frozen-copy.ts): its chunks, each on loan until release(). */
export interface FrozenData {
  readonly size: bigint
  readonly chunks: ReadonlyMap<number, Buffer>
  release(): void
}

export class FileData {
  size = 0n
  /** Bytes held by all chunk buffers. */
  used = 0
  readonly #chunks = new Map<number, Buffer>()
  readonly #store: ChunkStore
  /** Chunks a read has returned a view of: copied before they change, given back only when their loans end. */
  readonly #loans: Loans

  constructor(pool: ChunkPool = sharedPool) {
    const s = chunkStoreOf(pool)
    this.#store = s.store
    this.#loans = s.loans
  }

  /** Up to `count` bytes from `offset`; short at end of file, empty beyond it. The caller must not modify them. */
  read(offset: bigint, count: number): Buffer {
    return this.readLent(offset, count).data
  }

  /**
   * read(), and when the bytes are a view of a stored chunk, the function that
   * ends that loan (call it once they have been sent; see loans.ts).
   */
  readLent(offset: bigint, count: number): { data: Buffer; release?: () => void } {
    if (offset >= this.size || count <= 0) return { data: Buffer.alloc(0) }
    const avail = this.size - offset
    const n = BigInt(count) < avail ? count : Number(avail)
    const first = Number(offset / CHUNK)
    const within = Number(offset % CHUNK)
    const only = this.#chunks.get(first)
    if (n >= VIEW_FROM && only !== undefined && within + n <= only.length) {
      return { data: only.subarray(within, within + n), release: this.#loans.lend(only) }
    }
    const out = Buffer.allocUnsafe(n)
    let done = 0
    while (done < n) {
      const pos = offset + BigInt(done)
      const index = Number(pos / CHUNK)
      const at = Number(pos % CHUNK)
      const step = Math.min(n - done, CHUNK_SIZE - at)
      const chunk = this.#chunks.get(index)
      let copied = 0
      if (chunk !== undefined && at < chunk.length) copied = chunk.copy(out, done, at, Math.min(chunk.length, at + step))
      if (copied < step) out.fill(0, done + copied, done + step)
      done += step
    }
    return { data: out }
  }

  /**
   * The contents as they are now, for a frozen copy: the chunks themselves, each lent as a READ's
   * view is, so a later write to one copies it first (#writable); release() ends the loans.
   */
  freeze(): FrozenData {
    const chunks = new Map(this.#chunks)
    const ends = [...chunks.values()].map((c) => this.#loans.lend(c))
    return {
      size: this.size,
      chunks,
      release: () => {
        for (const end of ends) end()
      },
    }
  }

  /** Bytes of chunk storage a write of `length` bytes at `offset` would add. */
  growthFor(offset: bigint, length: number): number {
    let growth = 0
    this.#forEachPiece(offset, length, (index, within, step) => {
      const have = this.#chunks.get(index)?.length ?? 0
      growth += needed(have, within + step) - have
    })
    return growth
  }

  /** Copies `data` in at `offset`, extending the size; the caller has checked space and limits. */
  write(offset: bigint, data: Buffer): void {
    let done = 0
    this.#forEachPiece(offset, data.length, (index, within, step) => {
      const chunk = this.#writable(index, within + step, within === 0)
      data.copy(chunk, within, done, done + step)
      done += step
    })
    const end = offset + BigInt(data.length)
    if (end > this.size) this.size = end
  }

  /** Sets the size: shrinking frees whole chunks past the end and zeroes the tail of the last one. */
  truncate(size: bigint): void {
    if (size < this.size) {
      const keep = Number((size + CHUNK - 1n) / CHUNK)
      for (const [index, chunk] of this.#chunks) {
        if (index >= keep) {
          this.used -= chunk.length
          this.#chunks.delete(index)
          this.#loans.drop(chunk)
        }
      }
      const within = Number(size % CHUNK)
      const last = this.#chunks.get(keep - 1)
      // Zero the cut-off part so a later grow reads zeros, not old data (POSIX ftruncate).
      if (within !== 0 && last !== undefined && within < last.length) this.#writable(keep - 1, last.length, false).fill(0, within)
    }
    this.size = size
  }

  /** Drops all data (the last link went away). */
  clear(): void {
    for (const chunk of this.#chunks.values()) this.#loans.drop(chunk)
    this.#chunks.clear()
    this.used = 0
    this.size = 0n
  }

  /**
   * The chunk at `index`, at least `end` bytes long, safe to modify: a fresh
   * buffer when it must grow or was lent out. `overwritesHead`: the caller is
   * about to write bytes [0, end), so a new buffer's head need not be zeroed.
   */
  #writable(index: number, end: number, overwritesHead: boolean): Buffer {
    const chunk = this.#chunks.get(index)
    const have = chunk?.length ?? 0
    const need = needed(have, end)
    if (chunk !== undefined && need === have && !this.#loans.isLent(chunk)) return chunk
    // Reused memory: every byte not about to be written is copied or zeroed, so old contents never show.
    const fresh = this.#store.take(need)
    if (!(chunk === undefined && overwritesHead && end === need)) {
      const kept = chunk === undefined ? 0 : chunk.copy(fresh, 0, 0, have)
      fresh.fill(0, kept)
    }
    this.used += need - have
    this.#chunks.set(index, fresh)
    if (chunk !== undefined) this.#loans.drop(chunk)
    return fresh
  }

  #forEachPiece(offset: bigint, length: number, fn: (index: number, within: number, step: number) => void): void {
    let done = 0
    while (done < length) {
      const pos = offset + BigInt(done)
      const within = Number(pos % CHUNK)
      const step = Math.min(length - done, CHUNK_SIZE - within)
      fn(Number(pos / CHUNK), within, step)
      done += step
    }
  }
}
