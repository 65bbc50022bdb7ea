/*
 * The duplicate request cache's store (drc.ts): entries by key, least
 * recently used first, bounded in count and in charged bytes, each expiring
 * ttlMs after it was last set. One Map, whose insertion order is the LRU
 * order (a hit moves its entry to the end by deleting and setting it again).
 *
 * It replaces lru-cache here, whose TTL bookkeeping (a clock cached behind a
 * timer, typed arrays of starts and sizes, a linked list in index arrays)
 * cost ~4 µs of every non-idempotent call in the server's profile, where the
 * DRC on its usual path is one lookup that misses, one insertion and, once
 * full, one eviction (bench/README.md, session 38). The semantics kept are
 * those drc.ts relied on: get() drops and misses a stale entry and makes a
 * live one the most recent without renewing its time; peek() neither; set()
 * renews an entry's time and makes it the most recent, evicting the least
 * recent until the bounds hold, and stores nothing (dropping any older entry
 * of the key) when one entry alone would exceed the byte bound.
 */

export interface DrcEntry {
  /** null while the original call is in progress. */
  reply: Buffer | null
  /** Bytes charged against the byte bound. */
  readonly size: number
  /** performance.now() when set. */
  readonly at: number
}

export class DrcStore {
  readonly #map = new Map<string, DrcEntry>()
  readonly #max: number
  readonly #maxBytes: number
  readonly #ttlMs: number
  #bytes = 0

  constructor(max: number, maxBytes: number, ttlMs: number) {
    if (!(max >= 1)) throw new RangeError(`DRC entries must be at least 1, got ${max}`)
    this.#max = max
    this.#maxBytes = maxBytes
    this.#ttlMs = ttlMs
  }

  get size(): number {
    return this.#map.size
  }

  /** Bytes charged by the entries kept, stale ones not yet dropped included. */
  get bytes(): number {
    return this.#bytes
  }

  #stale(e: DrcEntry, now: number): boolean {
    return this.#ttlMs > 0 && now - e.at > this.#ttlMs
  }

  get(key: string): DrcEntry | undefined {
    const e = this.#map.get(key)
    if (e === undefined) return undefined
    if (this.#stale(e, performance.now())) {
      this.delete(key)
      return undefined
    }
    this.#map.delete(key)
    this.#map.set(key, e)
    return e
  }

  peek(key: string): DrcEntry | undefined {
    const e = this.#map.get(key)
    return e === undefined || this.#stale(e, performance.now()) ? undefined : e
  }

  set(key: string, reply: Buffer | null, size: number): void {
    this.delete(key)
    if (size > this.#maxBytes) return
    const map = this.#map
    while (map.size >= this.#max || this.#bytes + size > this.#maxBytes) {
      const oldest = map.keys().next()
      if (oldest.done === true) break
      this.delete(oldest.value)
    }
    map.set(key, { reply, size, at: performance.now() })
    this.#bytes += size
  }

  delete(key: string): void {
    const e = this.#map.get(key)
    if (e === undefined) return
    this.#map.delete(key)
    this.#bytes -= e.size
  }

  /** Drop every stale entry. */
  purgeStale(): void {
    const now = performance.now()
    for (const [key, e] of this.#map) if (this.#stale(e, now)) this.delete(key)
  }
}
