/*
 * The duplicate request cache's store (drc.ts): entries by key, least
 * recently used first, bounded in count and in charged bytes, each expiring
 * ttlMs after it was last set: a Map by a hash of the key for lookups (see
 * keyHash) and a doubly linked list of the entries for the LRU order. (The
 * Map's own insertion order would do as
 * the list, but reaching its oldest entry, map.keys().next(), walks over
 * every deleted slot before it: with the oldest evicted at each call, ~8 µs a
 * call once 16,384 entries were full.)
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
import { randomBytes } from 'node:crypto'

export interface DrcEntry {
  /** null while the original call is in progress. */
  reply: Buffer | null
  /** Bytes charged against the byte bound. */
  readonly size: number
  /** performance.now() when set. */
  readonly at: number
}

/** An entry in the LRU list: older toward `prev`, newer toward `next`. */
interface Node extends DrcEntry {
  readonly key: string
  /** keyHash(key): the Map's key. */
  readonly hash: number
  /** The next entry whose key has the same hash (rare). */
  chain: Node | null
  prev: Node | null
  next: Node | null
}

/**
 * FNV-1a's starting value, random per process: the keys hold what a client chooses (its xid),
 * and with a known start a client could search offline for many xids of one hash and make
 * every lookup walk a long chain.
 */
const HASH_START = randomBytes(4).readUInt32LE(0) | 0

/**
 * A small-integer hash of a key (FNV-1a over its UTF-16 units from a random start, 30 bits: a
 * V8 small integer). The Map is keyed by it because a Map keyed by the fresh key strings
 * themselves cost ~1.4 µs a lookup, insertion and deletion against ~0.13 with numbers (V8
 * flattens and hashes each new string). Equal hashes are told apart by comparing the keys: a
 * chain per hash.
 */
export function keyHash(key: string): number {
  let h = HASH_START
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x0100_0193)
  return (h ^ (h >>> 30)) & 0x3fff_ffff
}

export class DrcStore {
  readonly #map = new Map<number, Node>()
  #count = 0
  /** Least recently used: the next to go. */
  #oldest: Node | null = null
  #newest: Node | null = null
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
    return this.#count
  }

  /** Bytes charged by the entries kept, stale ones not yet dropped included. */
  get bytes(): number {
    return this.#bytes
  }

  #stale(e: DrcEntry, now: number): boolean {
    return this.#ttlMs > 0 && now - e.at > this.#ttlMs
  }

  #find(key: string, hash: number): Node | undefined {
    for (let n = this.#map.get(hash); n !== undefined; n = n.chain ?? undefined) if (n.key === key) return n
    return undefined
  }

  #unlink(n: Node): void {
    if (n.prev === null) this.#oldest = n.next
    else n.prev.next = n.next
    if (n.next === null) this.#newest = n.prev
    else n.next.prev = n.prev
    n.prev = null
    n.next = null
  }

  #append(n: Node): void {
    n.prev = this.#newest
    n.next = null
    if (this.#newest === null) this.#oldest = n
    else this.#newest.next = n
    this.#newest = n
  }

  get(key: string): DrcEntry | undefined {
    const n = this.#find(key, keyHash(key))
    if (n === undefined) return undefined
    if (this.#stale(n, performance.now())) {
      this.#remove(n)
      return undefined
    }
    if (n !== this.#newest) {
      this.#unlink(n)
      this.#append(n)
    }
    return n
  }

  peek(key: string): DrcEntry | undefined {
    const n = this.#find(key, keyHash(key))
    return n === undefined || this.#stale(n, performance.now()) ? undefined : n
  }

  set(key: string, reply: Buffer | null, size: number): void {
    const hash = keyHash(key)
    const old = this.#find(key, hash)
    if (old !== undefined) this.#remove(old)
    if (size > this.#maxBytes) return
    while (this.#oldest !== null && (this.#count >= this.#max || this.#bytes + size > this.#maxBytes)) this.#remove(this.#oldest)
    const n: Node = { reply, size, at: performance.now(), key, hash, chain: this.#map.get(hash) ?? null, prev: null, next: null }
    this.#map.set(hash, n)
    this.#append(n)
    this.#count++
    this.#bytes += size
  }

  delete(key: string): void {
    const n = this.#find(key, keyHash(key))
    if (n !== undefined) this.#remove(n)
  }

  #remove(n: Node): void {
    const head = this.#map.get(n.hash)
    if (head === n) {
      if (n.chain === null) this.#map.delete(n.hash)
      else this.#map.set(n.hash, n.chain)
    } else {
      let p = head
      while (p !== undefined && p.chain !== n) p = p.chain ?? undefined
      if (p !== undefined) p.chain = n.chain
    }
    n.chain = null
    this.#unlink(n)
    this.#count--
    this.#bytes -= n.size
  }

  /** Drop every stale entry. */
  purgeStale(): void {
    const now = performance.now()
    for (let n = this.#oldest; n !== null; ) {
      const next = n.next
      if (this.#stale(n, now)) this.#remove(n)
      n = next
    }
  }
}
