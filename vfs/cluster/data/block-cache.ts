/*
 * Blocks read from the object store, kept least-recently-used up to a byte
 * budget. Blocks are immutable (a key is written once), so a cached block is
 * never stale and nothing invalidates it; a deleted slice's blocks simply
 * age out. Concurrent readers of one block share one fetch. When the server
 * is idle, trim() drops the least recently used down to a low mark: any
 * block can be fetched again, and a reader holds its own reference to what
 * it is serving (a fetch in flight is not in the map at all).
 */
import { VfsError } from '../../errors.ts'
import { ObjectMissing, type ObjectStore } from '../object-store.ts'

export class BlockCache {
  private readonly store: ObjectStore
  private readonly capacity: number
  private readonly blocks = new Map<string, Buffer>()
  private readonly fetching = new Map<string, Promise<Buffer>>()
  private bytes = 0
  /** Reads served from the cache or from a fetch already in flight. */
  hits = 0
  /** Reads that started a fetch of their own. */
  misses = 0
  /** Blocks dropped to stay within the budget (not those an idle trim let go). */
  evictions = 0
  /** Blocks fetched by warm() (read-ahead). */
  prefetched = 0

  constructor(store: ObjectStore, capacity: number) {
    this.store = store
    this.capacity = capacity
  }

  /**
   * Bytes [from, from + length) of the block `key`, which is `blockLen`
   * bytes long. Small enough blocks are fetched whole and cached (reads are
   * mostly sequential); others are fetched by range, uncached.
   * ObjectMissing passes through (the caller decides if it is EIO).
   */
  async read(key: string, blockLen: number, from: number, length: number): Promise<Buffer> {
    if (blockLen * 4 > this.capacity) return this.fetchExact(key, from, length)
    const hit = this.blocks.get(key)
    if (hit !== undefined) {
      this.hits++
      this.blocks.delete(key)
      this.blocks.set(key, hit)
      return hit.subarray(from, from + length)
    }
    let p = this.fetching.get(key)
    if (p === undefined) {
      this.misses++
      p = this.fetchExact(key, 0, blockLen).finally(() => this.fetching.delete(key))
      this.fetching.set(key, p)
      const block = await p
      this.insert(key, block)
      return block.subarray(from, from + length)
    }
    // A reader that joins a fetch in flight (another reader's, or read-ahead's) costs no fetch of
    // its own: a hit, so that hits + misses count every read of a cached-size block.
    this.hits++
    return (await p).subarray(from, from + length)
  }

  /**
   * Fetch the block into the cache if it is not there (read-ahead). Blocks
   * too large to cache are skipped; the fetch is shared with readers of it.
   */
  async warm(key: string, blockLen: number): Promise<void> {
    if (blockLen * 4 > this.capacity || this.blocks.has(key)) return
    let p = this.fetching.get(key)
    if (p === undefined) {
      this.prefetched++
      p = this.fetchExact(key, 0, blockLen).finally(() => this.fetching.delete(key))
      this.fetching.set(key, p)
      this.insert(key, await p)
      return
    }
    await p
  }

  get size(): number {
    return this.bytes
  }

  /** The byte budget. */
  get limit(): number {
    return this.capacity
  }

  /** Drop the least recently used blocks until at most `lowBytes` are held; returns the bytes let go. */
  trim(lowBytes: number): number {
    const before = this.bytes
    for (const [k, b] of this.blocks) {
      if (this.bytes <= lowBytes) break
      this.blocks.delete(k)
      this.bytes -= b.length
    }
    return before - this.bytes
  }

  clear(): void {
    this.blocks.clear()
    this.bytes = 0
  }

  private async fetchExact(key: string, from: number, length: number): Promise<Buffer> {
    const b = await this.store.get(key, from, length)
    // A short block means the store holds something else under the key: not data we can serve.
    if (b.length !== length) throw new VfsError('EIO', `block ${key}: ${b.length} bytes at ${from}, expected ${length}`)
    return b
  }

  private insert(key: string, block: Buffer): void {
    if (this.blocks.has(key)) return
    this.blocks.set(key, block)
    this.bytes += block.length
    for (const [k, b] of this.blocks) {
      if (this.bytes <= this.capacity) break
      this.blocks.delete(k)
      this.bytes -= b.length
      this.evictions++
    }
  }
}

export function isMissing(err: unknown): err is ObjectMissing {
  return err instanceof ObjectMissing
}
