import type { BlockDevice } from '../blockdev/block-device.ts'
import { BufferCache } from './buffer-cache.ts'
import type { CacheCounts, CacheStats } from './buffer-cache.ts'
import { CheckpointList } from './checkpoint.ts'
import { JournalHandle, openTxn } from './journaled-handle.ts'
import type { OpenTxn } from './journaled-handle.ts'
import { TxnError } from './txn.ts'
import type { MetaTxn, TxnLog, TxnManager, WaitOptions } from './txn.ts'

/** A burst's last change asks within microseconds; this only bounds a burst whose last change failed. */
export const DEFAULT_DEFER_MS = 2

/** As jbd2's default max_batch_time (15 ms) scaled to a disk whose flush takes about a millisecond. */
export const DEFAULT_MAX_BATCH_MS = 4

/** After this many gathers in a row that no waiter joined, only every GATHER_PROBE-th commit gathers. */
const FUTILE_GATHERS = 3
const GATHER_PROBE = 8

export interface JournaledTxnOptions {
  blockSize: number
  /** Byte limit of the metadata cache (BLOCK_OVERHEAD per block counted); pinned blocks may exceed it. */
  cacheBytes?: number
  /** Commit dirty metadata nobody waits for after this long (ext4's commit=5); 0: never. */
  commitIntervalMs?: number
  /** Longest a commit waits for its batch to fill (jbd2's max_batch_time); 0: never waits. */
  maxBatchMs?: number
  /** Longest a deferred wait (WaitOptions.defer) waits before the manager asks for its commit. */
  deferMs?: number
  /** Checkpoint committed blocks this often, so the log rarely fills; 0: only when needed. */
  checkpointIntervalMs?: number
  /** Log blocks one transaction may grow to before new begins wait (jbd2: a quarter of the log). */
  maxTxnCost?: number
  /** Checkpoint before a commit when fewer than its cost plus this many log blocks are free. */
  logReserve?: number
  /** The tid of the first transaction: the log's next sequence number after recovery. */
  firstTid?: number
}

interface Waiter {
  tid: number
  resolve: () => void
  reject: (err: TxnError) => void
}

/**
 * The transaction manager of a mounted engine: jbd2's model over a TxnLog (see txn.ts).
 *
 * One worker (`#pump`) runs commits and checkpoints one at a time, so the log sees one call at a
 * time and the checkpoint list never changes under a checkpoint. A commit locks the running
 * transaction (new begins wait, as in jbd2's T_LOCKED: letting them change a shared buffer before
 * the snapshot would leak half of a later operation into this commit), waits for its handles to
 * end, copies its dirty blocks, opens the next transaction, and only then awaits the log: the
 * next transaction fills while the previous one is written, and every waiter that arrives
 * meanwhile shares its single commit and flush.
 *
 * A transaction's size is bounded (`maxTxnCost`, a quarter of the log as jbd2's max transaction):
 * past it, new begins wait for its commit, so one commit always fits in the log after a checkpoint.
 * Checkpoints write the newest committed snapshot of each block home, flush, then release the log
 * up to the newest durable tid; they run before a commit that would not fit (plus `logReserve`),
 * on a timer, when blocks waiting for home push the cache past its limit, and at close.
 *
 * A failed metadata read fails that read only (the caller answers EIO). Any device write or flush
 * failure, or log failure, aborts the manager, as jbd2 aborts the journal: the in-memory state no
 * longer matches anything durable, so every later begin and waitDurable rejects TXN_ABORTED and
 * recovery at the next open decides what survived.
 */
export class JournaledTxnManager implements TxnManager {
  readonly blockSize: number
  readonly #dev: BlockDevice
  readonly #log: TxnLog
  readonly #cache: BufferCache
  readonly #home: CheckpointList
  readonly #maxTxnCost: number
  readonly #reserve: number
  readonly #timers: NodeJS.Timeout[] = []
  #running: OpenTxn
  /** Newest durable tid, and newest released (all its blocks at home). */
  #durable: number
  #released: number
  /** Newest tid somebody asked to commit. */
  #want: number
  #waiters: Waiter[] = []
  #gate: Waiter[] = []
  #checkpointWaiters: Waiter[] = []
  #checkpointWanted = false
  #pumping = false
  /** Newest tid a deferred wait is for, and the timer that asks for it if nobody else does. */
  #deferred = 0
  #deferTimer: NodeJS.Timeout | null = null
  readonly #deferMs: number
  /** Waits for the running transaction, and how many the last commit resolved (see #gather). */
  #runningWaiters = 0
  #lastBatch = 0
  #batchFull: (() => void) | null = null
  /** Gathers in a row that no waiter joined, and commits since that made gathers the exception. */
  #futileGathers = 0
  #skippedGathers = 0
  /** Recent commit time in ms (moving average): the longest #gather waits. */
  #commitMs = 0
  readonly #maxBatchMs: number
  #aborted: TxnError | null = null
  #closing = false
  #closingDone: Promise<void> | null = null
  #closed = false
  /** While frozen: begins wait on it; thaw resolves it. */
  #frozen: { done: Promise<void>; open: () => void } | null = null

  constructor(dev: BlockDevice, log: TxnLog, options: JournaledTxnOptions) {
    this.blockSize = options.blockSize
    this.#dev = dev
    this.#log = log
    this.#cache = new BufferCache(dev, options.blockSize, options.cacheBytes ?? 64 * 1024 * 1024)
    this.#cache.onPressure = () => {
      if (this.#home.size > 0) this.#requestCheckpoint()
    }
    this.#home = new CheckpointList(this.#cache)
    const capacity = log.free
    this.#maxTxnCost = options.maxTxnCost ?? Math.floor(capacity / 4)
    this.#reserve = options.logReserve ?? Math.ceil(capacity / 16)
    if (!(this.#maxTxnCost > log.cost(1, 0))) {
      throw new TxnError('TXN_ABORTED', `a log of ${capacity} free blocks cannot hold a transaction (max cost ${this.#maxTxnCost})`)
    }
    this.#deferMs = options.deferMs ?? DEFAULT_DEFER_MS
    this.#maxBatchMs = options.maxBatchMs ?? DEFAULT_MAX_BATCH_MS
    const first = options.firstTid ?? 1
    this.#running = openTxn(first)
    this.#durable = this.#released = this.#want = first - 1
    const commitMs = options.commitIntervalMs ?? 5000
    if (commitMs > 0) {
      this.#every(commitMs, () => {
        this.#commitIdle()
      })
    }
    const checkpointMs = options.checkpointIntervalMs ?? 30_000
    if (checkpointMs > 0) {
      this.#every(checkpointMs, () => {
        this.#requestCheckpoint()
      })
    }
  }

  get cacheStats(): CacheStats {
    return this.#cache.stats
  }

  get cacheCounts(): Readonly<CacheCounts> {
    return this.#cache.counts
  }

  /** Idle: drop clean, unpinned blocks down to `lowBytes` (BufferCache.trim); returns the bytes let go. */
  trimCache(lowBytes: number): number {
    return this.#closed ? 0 : this.#cache.trim(lowBytes)
  }

  /** Newest transaction known durable. */
  get durableTid(): number {
    return this.#durable
  }

  async read(block: number): Promise<Buffer> {
    if (this.#closed) throw new TxnError('TXN_CLOSED', 'read after close')
    return (await this.#cache.load(block)).data
  }

  async begin(): Promise<MetaTxn> {
    for (;;) {
      this.#usable('begin')
      if (this.#frozen !== null) {
        await this.#frozen.done
        continue
      }
      const t = this.#running
      if (!t.locked && this.#log.cost(t.dirty.size, t.revokes.size) < this.#maxTxnCost) break
      // Too big: ask for its commit; the gate opens once its snapshot is taken. Wait at the gate
      // before asking: an idle manager takes the snapshot (and opens the gate) within the ask
      // itself, and a waiter that came after that would wait for a commit nobody asks for.
      const opened = new Promise<void>((resolve, reject) => this.#gate.push({ tid: t.tid, resolve, reject }))
      if (!t.locked) this.#ask(t.tid)
      await opened
    }
    return new JournalHandle(this.#running, this.#cache, () => this.#aborted)
  }

  end(h: MetaTxn): void {
    if (!(h instanceof JournalHandle)) throw new TxnError('TXN_NOT_HELD', 'end() of a handle this manager did not give out')
    h.finish()
  }

  waitDurable(tid: number, opts: WaitOptions = {}): Promise<void> {
    if (this.#aborted !== null) return Promise.reject(this.#aborted)
    if (tid <= this.#durable) return Promise.resolve()
    if (tid > this.#running.tid) return Promise.reject(new TxnError('TXN_NOT_HELD', `transaction ${tid} has not begun`))
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ tid, resolve, reject }))
    if (tid === this.#running.tid) {
      this.#runningWaiters++
      if (this.#runningWaiters >= this.#lastBatch) this.#batchFull?.()
    }
    if (opts.defer === true) this.#askLater(tid)
    else this.#ask(tid)
    return p
  }

  abort(reason: unknown): void {
    this.#abort(reason)
  }

  /** Write every committed block home and give the log its space back (also runs on a timer). */
  checkpoint(): Promise<void> {
    if (this.#aborted !== null) return Promise.reject(this.#aborted)
    const p = new Promise<void>((resolve, reject) => this.#checkpointWaiters.push({ tid: 0, resolve, reject }))
    this.#requestCheckpoint()
    return p
  }

  /**
   * ext4_freeze: new begins wait; the handles of the running transaction end (its commit waits for
   * them), it commits, every committed block goes home, and the log is left empty with
   * needs_recovery cleared — each step durable before the next — so the device now holds a clean
   * file system. File data needs nothing more: it reaches the device before its handle ends
   * (ordered mode), and the commit's flush covers it. A second freeze while frozen is refused.
   */
  async freeze(): Promise<void> {
    this.#usable('freeze')
    if (this.#frozen !== null) throw new TxnError('TXN_NOT_HELD', 'freeze of a frozen journal')
    let open = (): void => undefined
    const done = new Promise<void>((resolve) => (open = resolve))
    this.#frozen = { done, open }
    try {
      await this.waitDurable(this.#running.tid)
      await this.checkpoint()
      await this.#log.quiesce?.()
    } catch (err) {
      this.#frozen = null
      open()
      throw err
    }
  }

  /** Sets needs_recovery again (durably) and lets the waiting begins go. */
  async thaw(): Promise<void> {
    const f = this.#frozen
    if (f === null) throw new TxnError('TXN_NOT_HELD', 'thaw of a journal that is not frozen')
    try {
      if (this.#aborted === null) await this.#log.resume?.()
    } catch (err) {
      throw this.#abort(err)
    } finally {
      this.#frozen = null
      f.open()
    }
  }

  close(): Promise<void> {
    this.#closingDone ??= this.#close()
    return this.#closingDone
  }

  async #close(): Promise<void> {
    if (this.#aborted !== null) throw this.#aborted
    this.#closing = true
    try {
      await this.waitDurable(this.#running.tid)
      await this.checkpoint()
      await this.#log.close()
    } catch (err) {
      throw this.#abort(err)
    } finally {
      this.#stopTimers()
    }
    this.#closed = true
    this.#cache.clear()
  }

  #usable(what: string): void {
    if (this.#aborted !== null) throw this.#aborted
    if (this.#closing) throw new TxnError('TXN_CLOSED', `${what} after close`)
  }

  #every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms)
    timer.unref()
    this.#timers.push(timer)
  }

  #stopTimers(): void {
    for (const timer of this.#timers.splice(0)) clearInterval(timer)
    if (this.#deferTimer !== null) clearTimeout(this.#deferTimer)
    this.#deferTimer = null
  }

  #commitIdle(): void {
    const t = this.#running
    if (t.dirty.size > 0 || t.revokes.size > 0 || t.after.length > 0) this.#ask(t.tid)
  }

  #ask(tid: number): void {
    if (tid > this.#want) this.#want = tid
    this.#kick()
  }

  /** A deferred wait: asked for by the caller's successor, or by this timer at the latest. */
  #askLater(tid: number): void {
    if (tid > this.#deferred) this.#deferred = tid
    if (this.#deferTimer !== null) return
    this.#deferTimer = setTimeout(() => {
      this.#deferTimer = null
      if (this.#aborted === null) this.#ask(this.#deferred)
    }, this.#deferMs)
  }

  #requestCheckpoint(): void {
    this.#checkpointWanted = true
    this.#kick()
  }

  #kick(): void {
    if (this.#pumping || this.#aborted !== null) return
    this.#pumping = true
    void this.#pump()
  }

  async #pump(): Promise<void> {
    try {
      while (this.#aborted === null) {
        // A wanted checkpoint goes first: under a steady stream of commits it would never run
        // otherwise, and the blocks it writes home stay pinned in the cache until it does.
        if (this.#checkpointWanted) await this.#runCheckpoint()
        else if (this.#want >= this.#running.tid) {
          // Only when there is a batch to wait for: otherwise the commit locks its transaction at once.
          const limit = this.#gatherLimit()
          if (limit > 0) await this.#gather(limit)
          await this.#commit()
        }
        else break
      }
    } catch (err) {
      this.#abort(err)
    } finally {
      this.#pumping = false
    }
  }

  /**
   * Before a commit, let the batch fill (jbd2 does likewise: a sync writer that is not the last
   * one sleeps for about a commit time so others can join). Clients that each wait for their
   * reply send their next request only after the commit that answers them, so they come back
   * together but not at once: committing for the first arrival would answer one and make the
   * rest wait for a second commit. So if fewer are waiting than the last commit answered, wait
   * until as many are, for at most about one commit time (bounded by maxBatchMs) — unless the
   * last FUTILE_GATHERS gathers saw nobody join.
   */
  #gatherLimit(): number {
    if (this.#closing || this.#runningWaiters >= this.#lastBatch) return 0
    // Gathers nobody joins only delay the commit (nfsprobe's K=32 sends 29, then 3 more only once
    // those are answered); jbd2 too sleeps only if handles joined lately. One in GATHER_PROBE tries.
    if (this.#futileGathers >= FUTILE_GATHERS && ++this.#skippedGathers % GATHER_PROBE !== 0) return 0
    return Math.min(this.#maxBatchMs, this.#commitMs)
  }

  async #gather(limit: number): Promise<void> {
    const before = this.#runningWaiters
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, limit)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#batchFull = done
    })
    this.#batchFull = null
    this.#futileGathers = this.#runningWaiters > before ? 0 : this.#futileGathers + 1
  }

  async #commit(): Promise<void> {
    const t = this.#running
    t.locked = true
    while (t.open > 0) await new Promise<void>((resolve) => t.idle.push(resolve))
    if (this.#aborted !== null) return
    if (t.dirty.size === 0 && t.revokes.size === 0) {
      // Nothing to log: its handles changed nothing, and every older transaction is durable
      // already (commits run one at a time), so its waiters are done. It stays the running one.
      t.locked = false
      this.#want = t.tid - 1
      this.#openGate()
      this.#afterCommit(t)
      return
    }
    // The snapshot: synchronous, so no handle can change a buffer between copies.
    const entries = [...t.dirty.entries()].sort(([a], [b]) => a - b)
    const blocks = entries.map(([block, e]) => ({ block, data: Buffer.from(e.data) }))
    const revokes = [...t.revokes].sort((a, b) => a - b)
    this.#running = openTxn(t.tid + 1)
    this.#runningWaiters = 0
    this.#openGate()

    const cost = this.#log.cost(blocks.length, revokes.length)
    if (this.#log.free < cost + this.#reserve) await this.#runCheckpoint()
    if (this.#log.free < cost) {
      throw new TxnError('TXN_ABORTED', `transaction ${t.tid} needs ${cost} log blocks; ${this.#log.free} are free after a full checkpoint`)
    }
    const started = performance.now()
    await this.#log.commit(t.tid, blocks, revokes)
    this.#commitMs = this.#commitMs === 0 ? performance.now() - started : 0.8 * this.#commitMs + 0.2 * (performance.now() - started)
    this.#durable = t.tid
    for (const r of revokes) this.#home.revoke(r)
    for (const [i, [block, e]] of entries.entries()) {
      const snap = blocks[i]
      if (snap !== undefined) this.#home.add(t.tid, block, snap.data, e)
      this.#cache.unpin(e)
    }
    // Blocks waiting for home pin the cache: past its limit, a checkpoint is what frees it.
    if (this.#cache.stats.bytes > this.#cache.limit) this.#checkpointWanted = true
    this.#afterCommit(t)
  }

  /** Runs the transaction's callbacks, then resolves everyone waiting for it or an older one. */
  #afterCommit(t: OpenTxn): void {
    // A callback that throws leaves the allocator's state unknown: abort rather than go on.
    for (const fn of t.after.splice(0)) fn()
    const done = this.#waiters.filter((w) => w.tid <= t.tid)
    this.#waiters = this.#waiters.filter((w) => w.tid > t.tid)
    if (t.tid !== this.#running.tid) this.#lastBatch = done.length
    for (const w of done) w.resolve()
  }

  async #runCheckpoint(): Promise<void> {
    this.#checkpointWanted = false
    const waiters = this.#checkpointWaiters.splice(0)
    const upTo = this.#durable
    try {
      if (this.#home.size > 0 || upTo > this.#released) {
        await this.#home.writeHome(this.#dev, this.blockSize)
        await this.#log.release(upTo)
        this.#released = upTo
      }
    } catch (err) {
      const aborted = this.#abort(err)
      for (const w of waiters) w.reject(aborted)
      throw aborted
    }
    for (const w of waiters) w.resolve()
  }

  #openGate(): void {
    for (const g of this.#gate.splice(0)) g.resolve()
  }

  #abort(err: unknown): TxnError {
    if (this.#aborted !== null) return this.#aborted
    const reason = err instanceof Error ? err.message : String(err)
    const aborted = new TxnError('TXN_ABORTED', `journal aborted: ${reason}`, { cause: err })
    this.#aborted = aborted
    this.#stopTimers()
    for (const w of [...this.#waiters.splice(0), ...this.#gate.splice(0), ...this.#checkpointWaiters.splice(0)]) w.reject(aborted)
    // A commit waiting for handles must not wait forever once nothing can commit.
    for (const wake of this.#running.idle.splice(0)) wake()
    return aborted
  }
}
