import type { BlockDevice } from '../blockdev/block-device.ts'
import { BLOCK_OVERHEAD } from './buffer-cache.ts'
import type { CacheCounts, CacheStats } from './buffer-cache.ts'
import { TxnError } from './txn.ts'
import type { MetaTxn, TxnManager } from './txn.ts'

/**
 * Transactions without a journal: every commit writes its dirty blocks in place and flushes. Only
 * for an image nobody else uses and where a crash mid-commit is acceptable — mkfs (the image is
 * not valid until it finishes anyway), tests of the code above the interface, and fsck --repair
 * (e2fsck writes in place too). The engine serving clients uses the journaled manager, except
 * for an image opened read-only (a snapshot, an image file we may not write): then `cacheBytes`
 * bounds the blocks kept, as cache= does for the journaled manager's cache. Without a bound a
 * walk of a large read-only tree kept every metadata block it had read for as long as the
 * export was served.
 */
export class DirectTxnManager implements TxnManager {
  readonly blockSize: number
  readonly #dev: BlockDevice
  readonly #cache = new Map<number, Buffer>()
  readonly #dirty = new Set<number>()
  readonly #after: Array<() => void> = []
  #tid = 1
  #open = 0
  #idle: Array<() => void> = []
  #closed = false
  #aborted: TxnError | null = null
  /** Byte limit of the blocks kept (Infinity: all, for mkfs and fsck, which write what they read). */
  readonly #limit: number
  readonly #counts: CacheCounts = { hits: 0, misses: 0, evictions: 0 }

  constructor(dev: BlockDevice, blockSize: number, cacheBytes = Infinity) {
    this.#dev = dev
    this.blockSize = blockSize
    this.#limit = cacheBytes
  }

  /** Blocks kept and their cost, counted as the journaled manager's cache counts (BLOCK_OVERHEAD). */
  get cacheStats(): CacheStats {
    return { blocks: this.#cache.size, pinned: this.#dirty.size, bytes: this.#cache.size * (this.blockSize + BLOCK_OVERHEAD), limit: this.#limit }
  }

  get cacheCounts(): Readonly<CacheCounts> {
    return this.#counts
  }

  /**
   * Idle: drop the oldest blocks no change holds until at most `lowBytes` are kept, under the same
   * rule as the limit's eviction (none while a transaction is open: a writer may mark a block it
   * read dirty later). Returns the bytes let go.
   */
  trimCache(lowBytes: number): number {
    const cost = this.blockSize + BLOCK_OVERHEAD
    if (this.#open > 0 || this.#closed) return 0
    const before = this.#cache.size
    for (const block of this.#cache.keys()) {
      if (this.#cache.size * cost <= lowBytes) break
      if (!this.#dirty.has(block)) this.#cache.delete(block)
    }
    return (before - this.#cache.size) * cost
  }

  /**
   * Over the limit: drop the oldest blocks read that no change holds. Only while no transaction is
   * open (a writer may change a block it read and mark it dirty later); a reader holding a dropped
   * buffer keeps its copy, and the next read of the block reads the device again.
   */
  #evict(): void {
    const cost = this.blockSize + BLOCK_OVERHEAD
    if (this.#open > 0 || this.#cache.size * cost <= this.#limit) return
    for (const block of this.#cache.keys()) {
      if (this.#cache.size * cost <= this.#limit) break
      if (!this.#dirty.has(block)) {
        this.#cache.delete(block)
        this.#counts.evictions++
      }
    }
  }

  async read(block: number): Promise<Buffer> {
    if (this.#closed) throw new TxnError('TXN_CLOSED', 'read after close')
    const hit = this.#cache.get(block)
    if (hit !== undefined) {
      this.#counts.hits++
      return hit
    }
    this.#counts.misses++
    const buf = await this.#dev.read(block * this.blockSize, this.blockSize)
    // Another caller may have cached (and changed) it while we waited: theirs wins.
    const raced = this.#cache.get(block)
    if (raced !== undefined) return raced
    this.#cache.set(block, buf)
    this.#evict()
    return buf
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async to match the journaled manager, which can wait here
  async begin(): Promise<MetaTxn> {
    if (this.#aborted !== null) throw this.#aborted
    if (this.#closed) throw new TxnError('TXN_CLOSED', 'begin after close')
    this.#open++
    let ended = false
    const check = (): void => {
      if (ended) throw new TxnError('TXN_ENDED', 'handle used after end()')
    }
    const h: MetaTxn & { finish(): void } = {
      tid: this.#tid,
      get: async (block) => {
        check()
        return this.read(block)
      },
      fresh: (block) => {
        check()
        const buf = Buffer.alloc(this.blockSize)
        this.#cache.set(block, buf)
        this.#dirty.add(block)
        return buf
      },
      dirty: (block) => {
        check()
        if (!this.#cache.has(block)) throw new TxnError('TXN_NOT_HELD', `block ${block} marked dirty but never read`)
        this.#dirty.add(block)
      },
      revoke: (block) => {
        check()
        this.#cache.delete(block)
        this.#dirty.delete(block)
      },
      afterCommit: (fn) => {
        check()
        this.#after.push(fn)
      },
      finish: () => {
        check()
        ended = true
      },
    }
    return h
  }

  end(h: MetaTxn): void {
    ;(h as MetaTxn & { finish(): void }).finish()
    if (--this.#open === 0) for (const wake of this.#idle.splice(0)) wake()
  }

  async waitDurable(tid: number): Promise<void> {
    if (tid < this.#tid) return
    await this.#commit()
  }

  /** Drops every change not yet written (blocks written by earlier commits stay: there is no log to undo them). */
  abort(reason: unknown): void {
    if (this.#aborted !== null) return
    this.#aborted = new TxnError('TXN_ABORTED', `aborted: ${reason instanceof Error ? reason.message : String(reason)}`, { cause: reason })
    this.#dirty.clear()
    this.#after.length = 0
    this.#cache.clear()
  }

  async #commit(): Promise<void> {
    // A commit never captures half an operation: wait until every open handle has ended.
    while (this.#open > 0) await new Promise<void>((resolve) => this.#idle.push(resolve))
    if (this.#aborted !== null) throw this.#aborted
    this.#tid++
    const blocks = [...this.#dirty].sort((a, b) => a - b)
    this.#dirty.clear()
    for (const b of blocks) {
      const buf = this.#cache.get(b)
      if (buf !== undefined) await this.#dev.write(b * this.blockSize, Buffer.from(buf))
    }
    await this.#dev.flush()
    for (const fn of this.#after.splice(0)) fn()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#aborted !== null) {
      this.#closed = true
      throw this.#aborted
    }
    await this.#commit()
    this.#closed = true
    this.#cache.clear()
  }
}
