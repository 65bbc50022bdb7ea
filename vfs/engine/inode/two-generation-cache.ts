/*
 * A bounded cache that keeps what was used recently, at O(1) per access without reordering: a young
 * and an old generation. Hits in the old one move to the young one; when the young one is full it
 * becomes the old one and the previous old one is dropped whole. What survives is what was used
 * in the last one or two generations, an approximation of LRU.
 *
 * Why not a Map reordered on every hit (delete + set) with the first key evicted: V8's ordered
 * hash tables keep deleted slots until they rehash, and finding the first live key walks over
 * them, so a steady stream of hits and evictions made each access cost microseconds.
 */
export class TwoGenerationCache<K, V> {
  #young = new Map<K, V>()
  #old = new Map<K, V>()
  readonly #half: number

  /** Holds at least `size / 2` and at most `size` entries once warm. */
  constructor(size: number) {
    this.#half = Math.max(1, Math.ceil(size / 2))
  }

  get size(): number {
    return this.#young.size + this.#old.size
  }

  get(key: K): V | undefined {
    const young = this.#young.get(key)
    if (young !== undefined) return young
    const old = this.#old.get(key)
    if (old === undefined) return undefined
    this.#old.delete(key)
    this.#put(key, old)
    return old
  }

  set(key: K, value: V): void {
    this.#old.delete(key)
    this.#put(key, value)
  }

  delete(key: K): void {
    this.#young.delete(key)
    this.#old.delete(key)
  }

  clear(): void {
    this.#young.clear()
    this.#old.clear()
  }

  /**
   * Keep at most `keep` entries: the old generation goes first, then the young one's oldest. The
   * young generation is rebuilt rather than thinned by deletes (see above: deleted slots stay).
   * Returns the entries dropped.
   */
  trim(keep: number): number {
    const before = this.size
    if (before <= keep) return 0
    this.#old = new Map()
    if (this.#young.size > keep) this.#young = new Map(keep <= 0 ? [] : [...this.#young].slice(-keep))
    return before - this.size
  }

  #put(key: K, value: V): void {
    if (!this.#young.has(key) && this.#young.size >= this.#half) {
      this.#old = this.#young
      this.#young = new Map()
    }
    this.#young.set(key, value)
  }
}
