import type { BlockDevice } from '../blockdev/block-device.ts'

/**
 * Bytes a cached block costs beyond its data, counted against the cache's byte limit. Measured by
 * `bench/txn.ts` on Node 20 x64 with 100,000 cached blocks: the Buffer object, its backing-store
 * record, the entry and its Map slot take about 270 bytes of heap and external memory; process RSS
 * grows by 640 (4 KiB blocks) to 770 (1 KiB blocks) bytes per block beyond the data, the rest
 * being malloc's header and rounding per Buffer and heap slack. Counting 768 keeps RSS within the
 * limit for either block size.
 */
export const BLOCK_OVERHEAD = 768

/** One cached metadata block: the live buffer every handle shares. */
export interface CacheEntry {
  readonly block: number
  readonly data: Buffer
  /**
   * Why this block must stay: held by an open handle, dirty in a transaction, or committed and not
   * yet written home (evicting it then would let a re-read see the stale home copy).
   */
  pins: number
  /** Read since the eviction scan last passed it: it gets a second chance (see #evict). */
  used: boolean
}

export interface CacheStats {
  blocks: number
  pinned: number
  bytes: number
  limit: number
}

/** Lookups since the cache was made: plain counters, bumped on paths that run anyway (no allocation). */
export interface CacheCounts {
  hits: number
  misses: number
  /** Clean blocks dropped to stay within the limit (an idle trim's are not counted here). */
  evictions: number
}

/**
 * The metadata buffer cache. Unpinned entries live in `#lru` (a Map keeps insertion order) and are
 * evicted from its front whenever the cache exceeds its byte limit, with a second chance for those
 * read since the scan last passed (the clock algorithm): a hit only sets a flag, where moving the
 * entry to the back of the Map cost microseconds per hit once the cache was full. Pinned entries
 * live in `#pinned` and are never evicted, so the limit can be exceeded only by pinned blocks
 * (then `onPressure` lets the manager checkpoint to unpin some).
 */
export class BufferCache {
  readonly blockSize: number
  readonly limit: number
  /** Called when pinned blocks alone exceed the limit. */
  onPressure: () => void = () => undefined
  readonly #dev: BlockDevice
  readonly #lru = new Map<number, CacheEntry>()
  readonly #pinned = new Map<number, CacheEntry>()
  readonly #loading = new Map<number, Promise<CacheEntry>>()
  readonly #counts: CacheCounts = { hits: 0, misses: 0, evictions: 0 }

  constructor(dev: BlockDevice, blockSize: number, limitBytes: number) {
    this.#dev = dev
    this.blockSize = blockSize
    this.limit = limitBytes
  }

  get stats(): CacheStats {
    const blocks = this.#lru.size + this.#pinned.size
    return { blocks, pinned: this.#pinned.size, bytes: this.#bytes(), limit: this.limit }
  }

  get counts(): Readonly<CacheCounts> {
    return this.#counts
  }

  #bytes(): number {
    return (this.#lru.size + this.#pinned.size) * (this.blockSize + BLOCK_OVERHEAD)
  }

  peek(block: number): CacheEntry | undefined {
    return this.#pinned.get(block) ?? this.#lru.get(block)
  }

  /** Cached, or a read of it under way. */
  has(block: number): boolean {
    return this.#pinned.has(block) || this.#lru.has(block) || this.#loading.has(block)
  }

  /** The cached entry of `block`, read from the device on a miss; concurrent misses share one read. */
  load(block: number): Promise<CacheEntry> {
    const hit = this.#pinned.get(block)
    if (hit !== undefined) {
      this.#counts.hits++
      return Promise.resolve(hit)
    }
    const clean = this.#lru.get(block)
    if (clean !== undefined) {
      this.#counts.hits++
      clean.used = true
      return Promise.resolve(clean)
    }
    let loading = this.#loading.get(block)
    if (loading === undefined) {
      this.#counts.misses++
      loading = this.#fetch(block)
      this.#loading.set(block, loading)
    }
    return loading
  }

  async #fetch(block: number): Promise<CacheEntry> {
    try {
      const data = Buffer.alloc(this.blockSize)
      await this.#dev.readInto(block * this.blockSize, data)
      // fresh() may have created the block while we read: its (newer) content wins.
      const raced = this.peek(block)
      if (raced !== undefined) return raced
      const entry: CacheEntry = { block, data, pins: 0, used: false }
      this.#lru.set(block, entry)
      this.#evict()
      return entry
    } finally {
      this.#loading.delete(block)
    }
  }

  /** A zero-filled entry for a newly allocated block, returned pinned once. */
  fresh(block: number): CacheEntry {
    const cur = this.peek(block)
    if (cur !== undefined) {
      cur.data.fill(0)
      return this.pin(cur)
    }
    const entry: CacheEntry = { block, data: Buffer.alloc(this.blockSize), pins: 0, used: false }
    return this.pin(entry)
  }

  /**
   * Pin `entry` and return the canonical entry of its block: if `entry` was evicted between its load
   * and this call it is put back (it was clean, so it still matches the device) unless the block has
   * been loaded again meanwhile, in which case that newer entry is pinned instead.
   */
  pin(entry: CacheEntry): CacheEntry {
    const cur = this.peek(entry.block)
    const e = cur ?? entry
    e.pins++
    if (e.pins === 1) {
      this.#lru.delete(e.block)
      this.#pinned.set(e.block, e)
      if (this.#bytes() > this.limit) this.onPressure()
    }
    return e
  }

  unpin(entry: CacheEntry): void {
    if (entry.pins <= 0) return
    entry.pins--
    if (entry.pins > 0 || this.#pinned.get(entry.block) !== entry) return
    this.#pinned.delete(entry.block)
    // Back of the queue: just written, it is the most recently used.
    entry.used = false
    this.#lru.set(entry.block, entry)
    this.#evict()
  }

  /** Forget `block` (revoked): later loads read the device again. */
  drop(block: number): void {
    const e = this.peek(block)
    if (e !== undefined) e.pins = 0
    this.#pinned.delete(block)
    this.#lru.delete(block)
  }

  clear(): void {
    this.#pinned.clear()
    this.#lru.clear()
  }

  /**
   * The server is idle: drop unpinned blocks, oldest first, until the cache holds at most `lowBytes`
   * (pinned blocks count but stay: they are dirty, held by a handle, or not yet written home, and
   * dropping one would let a re-read see a stale home copy). A clean block matches the device, so
   * a later load reads it again; a reader still holding its buffer keeps that copy, as after an
   * eviction. Returns the bytes let go.
   */
  trim(lowBytes: number): number {
    const cost = this.blockSize + BLOCK_OVERHEAD
    const before = this.#bytes()
    let bytes = before
    for (const block of this.#lru.keys()) {
      if (bytes <= lowBytes) break
      this.#lru.delete(block)
      bytes -= cost
    }
    return before - bytes
  }

  #evict(): void {
    const cost = this.blockSize + BLOCK_OVERHEAD
    let bytes = this.#bytes()
    if (bytes <= this.limit) return
    // A used entry goes to the back with its flag cleared; the iteration meets it again there
    // (a Map's iterator visits entries added during it), so the scan ends after two passes at most.
    for (const [block, e] of this.#lru) {
      if (bytes <= this.limit) break
      this.#lru.delete(block)
      if (e.used) {
        e.used = false
        this.#lru.set(block, e)
      } else {
        bytes -= cost
        this.#counts.evictions++
      }
    }
  }
}
