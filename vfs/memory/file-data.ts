/*
 * Sparse file contents: fixed-size chunks in a Map keyed by chunk index.
 * A missing chunk is a hole and reads as zeros. A chunk's Buffer may be
 * shorter than CHUNK_SIZE (small files stay small); the bytes past its end
 * read as zeros too. Sizes and offsets are bigint (up to 2^63-1); a chunk
 * index is at most 2^47, so it fits a number.
 */

export const CHUNK_SIZE = 64 * 1024
const CHUNK = BigInt(CHUNK_SIZE)
/** Chunk buffers grow in steps of this many bytes, so sequential appends do not reallocate per write. */
const GROW_STEP = 4096

function roundUp(n: number): number {
  return Math.min(CHUNK_SIZE, Math.ceil(n / GROW_STEP) * GROW_STEP)
}

export class FileData {
  size = 0n
  /** Bytes held by all chunk buffers. */
  used = 0
  readonly #chunks = new Map<number, Buffer>()

  /** Copies up to `count` bytes from `offset`; short at end of file, empty beyond it. */
  read(offset: bigint, count: number): Buffer {
    if (offset >= this.size || count <= 0) return Buffer.alloc(0)
    const avail = this.size - offset
    const n = BigInt(count) < avail ? count : Number(avail)
    // Always a fresh buffer: the caller sends it asynchronously while later writes may change chunks.
    const out = Buffer.alloc(n)
    let done = 0
    while (done < n) {
      const pos = offset + BigInt(done)
      const index = Number(pos / CHUNK)
      const within = Number(pos % CHUNK)
      const step = Math.min(n - done, CHUNK_SIZE - within)
      const chunk = this.#chunks.get(index)
      if (chunk !== undefined && within < chunk.length) {
        chunk.copy(out, done, within, Math.min(chunk.length, within + step))
      }
      done += step
    }
    return out
  }

  /** Bytes of chunk storage a write of `length` bytes at `offset` would add. */
  growthFor(offset: bigint, length: number): number {
    let growth = 0
    this.#forEachPiece(offset, length, (index, within, step) => {
      const have = this.#chunks.get(index)?.length ?? 0
      const need = roundUp(within + step)
      if (need > have) growth += need - have
    })
    return growth
  }

  /** Copies `data` in at `offset`, extending the size; the caller has checked space and limits. */
  write(offset: bigint, data: Buffer): void {
    let done = 0
    this.#forEachPiece(offset, data.length, (index, within, step) => {
      let chunk = this.#chunks.get(index)
      const need = roundUp(within + step)
      if (chunk === undefined || chunk.length < need) {
        const bigger = Buffer.alloc(need)
        if (chunk !== undefined) chunk.copy(bigger)
        this.used += need - (chunk?.length ?? 0)
        chunk = bigger
        this.#chunks.set(index, chunk)
      }
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
        }
      }
      const within = Number(size % CHUNK)
      const last = this.#chunks.get(keep - 1)
      // Zero the cut-off part so a later grow reads zeros, not old data (POSIX ftruncate).
      if (within !== 0 && last !== undefined && within < last.length) last.fill(0, within)
    }
    this.size = size
  }

  /** Drops all data (the last link went away). */
  clear(): void {
    this.#chunks.clear()
    this.used = 0
    this.size = 0n
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
