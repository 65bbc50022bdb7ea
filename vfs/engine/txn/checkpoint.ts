import type { BlockDevice } from '../blockdev/block-device.ts'
import type { BufferCache, CacheEntry } from './buffer-cache.ts'

/** The newest committed copy of a block, waiting to be written to its home location. */
interface PendingHome {
  readonly tid: number
  readonly data: Buffer
  /** The live cache entry, pinned so a re-read never sees the stale home copy meanwhile. */
  readonly entry: CacheEntry
}

/** Home writes in flight at once during a checkpoint: enough to keep a device queue busy. */
const WRITE_CONCURRENCY = 32

/**
 * Committed blocks not yet at home. Only snapshots taken at commit are kept here — never the live
 * buffer, which may already hold changes of a transaction that is not durable — and a block is
 * added only once its transaction is durable, so no home write can precede its commit.
 */
export class CheckpointList {
  readonly #cache: BufferCache
  readonly #pending = new Map<number, PendingHome>()

  constructor(cache: BufferCache) {
    this.#cache = cache
  }

  get size(): number {
    return this.#pending.size
  }

  /** `block` as transaction `tid` committed it; replaces an older snapshot (only the newest goes home). */
  add(tid: number, block: number, data: Buffer, entry: CacheEntry): void {
    const old = this.#pending.get(block)
    this.#pending.set(block, { tid, data, entry: this.#cache.pin(entry) })
    if (old !== undefined) this.#cache.unpin(old.entry)
  }

  /**
   * A durable transaction revoked `block`: its older snapshot must never be written home, since the
   * block may be reused (even for file data) as soon as the allocator gets it back.
   */
  revoke(block: number): void {
    const old = this.#pending.get(block)
    if (old === undefined) return
    this.#pending.delete(block)
    this.#cache.unpin(old.entry)
  }

  /**
   * Write every pending snapshot home and flush the device. The caller then releases the log up
   * to the newest durable transaction: every block it logged is home now, or revoked.
   */
  async writeHome(dev: BlockDevice, blockSize: number): Promise<number> {
    const batch = [...this.#pending.entries()].sort(([a], [b]) => a - b)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < batch.length) {
        const item = batch[next++]
        if (item !== undefined) await dev.write(item[0] * blockSize, item[1].data)
      }
    }
    await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, batch.length) }, worker))
    if (batch.length > 0) await dev.flush()
    // Nothing was added meanwhile (the manager runs commits and checkpoints one at a time).
    for (const [block, p] of batch) {
      this.#pending.delete(block)
      this.#cache.unpin(p.entry)
    }
    return batch.length
  }
}
