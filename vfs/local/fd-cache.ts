/*
 * A bounded cache of open file descriptors keyed by file id, with
 * reference counts: an fd in use by a request is never closed under it
 * (closing it would let the kernel hand the same number to another open,
 * and `/proc/self/fd/<n>/name` would then name a different directory).
 * Idle entries close after `idleMs`; entries older than `maxAgeMs` are not
 * handed out again (they are reopened), which bounds how long a directory
 * moved out of the export on the host stays reachable through a cached fd.
 * The cache may exceed `max` only by entries currently in use. Closes go
 * through the thread pool, unlike the other short calls (sys.ts): the close
 * of the last fd on an unlinked file frees it, which for a large file takes
 * milliseconds. Except with `cheapClose`, where an entry pushed out by a
 * new one (a working set larger than the cache: every request then opens
 * one and closes another) is closed at once unless an fstat says it is the
 * last link to a large unlinked file: a close is otherwise a microsecond or
 * two on a local file system (neither an O_PATH fd nor a regular one is
 * flushed by it), and handing it to the pool costs the event loop ten
 * times that. It also keeps the fds waiting for a pool thread few: with
 * reads served from the page cache on the event loop (sys.ts pread), the
 * loop could otherwise push out fds faster than the pool closed them.
 */
import { isSmall } from './attr.ts'
import { closeNow, closeQuietly, fstatNow } from './sys.ts'

export interface FdEntry {
  readonly key: bigint
  readonly fd: number
  readonly gen: number
  /** Whatever the owner needs to remember about the fd (open mode, file type). */
  readonly tag: number
  refs: number
  lastUsed: number
  readonly openedAt: number
  dead: boolean
}

export interface FdCacheOptions {
  max: number
  idleMs: number
  maxAgeMs: number
  /** Pushed-out entries close on this thread when that frees nothing large (see the header). */
  cheapClose?: boolean
}

export class FdCache {
  readonly #map = new Map<bigint, FdEntry>()
  readonly #opts: FdCacheOptions
  /** Entries evicted while in use: closed on their last release. */
  #limbo = 0

  constructor(opts: FdCacheOptions) {
    this.#opts = opts
  }

  /** Open fds held (cached plus evicted-but-in-use). */
  get openCount(): number {
    return this.#map.size + this.#limbo
  }

  acquire(key: bigint, now = Date.now()): FdEntry | undefined {
    const e = this.#map.get(key)
    if (e === undefined) return undefined
    if (now - e.openedAt > this.#opts.maxAgeMs) {
      void this.evict(key, this.#cheap(e))
      return undefined
    }
    e.refs++
    e.lastUsed = now
    // Most recently used goes last: Map iteration order is the LRU order.
    this.#map.delete(key)
    this.#map.set(key, e)
    return e
  }

  /** Takes ownership of `fd`; returns it acquired once. An older entry for the key is evicted. */
  insert(key: bigint, fd: number, gen: number, tag: number): FdEntry {
    if (this.#map.has(key)) void this.evict(key)
    const now = Date.now()
    const e: FdEntry = { key, fd, gen, tag, refs: 1, lastUsed: now, openedAt: now, dead: false }
    this.#map.set(key, e)
    this.#trim()
    return e
  }

  release(e: FdEntry): void {
    e.refs--
    if (e.refs > 0) return
    if (e.dead) {
      this.#limbo--
      void closeQuietly(e.fd)
    } else {
      this.#trim()
    }
  }

  /**
   * `now`: close on this thread (the caller knows the close frees nothing large). Resolves when
   * the fd is closed, or at once when it is in use (it closes on its last release).
   */
  evict(key: bigint, now = false): Promise<void> {
    const e = this.#map.get(key)
    if (e === undefined) return Promise.resolve()
    this.#map.delete(key)
    e.dead = true
    if (e.refs !== 0) {
      this.#limbo++
      return Promise.resolve()
    }
    if (!now) return closeQuietly(e.fd)
    closeNow(e.fd)
    return Promise.resolve()
  }

  /** Closes idle entries; called from a timer. */
  sweep(now = Date.now()): void {
    for (const e of [...this.#map.values()]) {
      if (e.refs === 0 && (now - e.lastUsed > this.#opts.idleMs || now - e.openedAt > this.#opts.maxAgeMs)) void this.evict(e.key)
    }
  }

  /** Closes everything not in use now (resolving when closed); what is in use closes on release. */
  async clear(): Promise<void> {
    const idle = [...this.#map.values()].filter(e => e.refs === 0)
    for (const e of idle) this.#map.delete(e.key)
    for (const key of [...this.#map.keys()]) void this.evict(key)
    await Promise.all(idle.map(e => closeQuietly(e.fd)))
  }

  #trim(): void {
    if (this.#map.size <= this.#opts.max) return
    for (const e of this.#map.values()) {
      if (this.#map.size <= this.#opts.max) return
      if (e.refs === 0) void this.evict(e.key, this.#cheap(e))
    }
  }

  /** Whether closing an idle entry's fd now frees nothing large (cheapClose caches only). */
  #cheap(e: FdEntry): boolean {
    if (this.#opts.cheapClose !== true || e.refs !== 0) return false
    try {
      const st = fstatNow(e.fd)
      return st.nlink > 0n || isSmall(st)
    } catch {
      return false
    }
  }
}
