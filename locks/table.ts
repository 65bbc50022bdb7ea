/*
 * The lock table: POSIX byte-range locks and DOS share reservations per file,
 * with blocking requests queued per file. Files are opaque keys of the
 * caller's choosing (the server uses the file handle in hex); owners are
 * (client, svid, oh). It knows nothing of RPC: the NLM program calls it, and
 * turns its statuses into nlm4_stats. Everything is synchronous, so each call
 * sees and leaves a consistent table; onGranted callbacks run after it is.
 */
import { Counts } from './counts.ts'
import { FileState, type Waiter } from './file-state.ts'
import { keepOwner, ownerKey } from './owner.ts'
import { carve, checkRange, downgrades, overlay } from './ranges.ts'
import { addShare, removeShare } from './shares.ts'
import { DEFAULT_LOCK_LIMITS } from './types.ts'
import type { HeldLock, LockLimits, LockOwner, LockRange, LockRequest, LockResult, ShareRequest, ShareResult, TestResult, UnlockResult } from './types.ts'
import { closesCycle } from './waits.ts'

export interface LockOptions {
  /** Queue the request if it conflicts (NLM LOCK with block = true) instead of answering denied. */
  readonly block: boolean
  /** Called when a queued request is granted, after the table holds the lock. */
  readonly onGranted?: (lock: HeldLock) => void
}

export interface TableSize {
  readonly held: number
  readonly waiting: number
  readonly shares: number
  readonly files: number
}

interface Grant {
  readonly lock: HeldLock
  readonly onGranted: ((lock: HeldLock) => void) | undefined
}

export class LockTable {
  readonly limits: LockLimits
  private readonly files = new Map<string, FileState>()
  private readonly counts = new Counts()
  /** Queued requests by owner key: where the waits-for graph's edges start. */
  private readonly queued = new Map<string, Set<Waiter>>()

  constructor(limits: Partial<LockLimits> = {}) {
    this.limits = { ...DEFAULT_LOCK_LIMITS, ...limits }
  }

  /** NLM TEST: the first lock of another owner in the way, or ok. */
  test(req: LockRequest): TestResult {
    checkRange(req)
    const holder = this.files.get(req.file)?.firstConflict(req, ownerKey(req.owner))
    return holder === undefined ? { ok: true } : { ok: false, holder }
  }

  /**
   * NLM LOCK. Without a conflict the lock is laid over the owner's own
   * (ranges/overlay) and granted. With one: denied, or with `block` queued at
   * the end of the file's FIFO, unless that would close a cycle (deadlock). A
   * retransmitted request already queued stays queued once, with the newer
   * callback. Every limit is checked before anything is stored.
   *
   * Deadlock is looked for whenever a request would wait: when it is queued
   * and when it is retransmitted. A cycle can also close later, when an owner
   * that waits for O is granted, without waiting, bytes a queued request of O
   * wants; that one is found at O's next retransmission (Linux clients resend
   * a blocked LOCK every 30 s), which then answers deadlock and leaves the
   * queue, as a Linux waiter learns EDEADLK when it retries.
   */
  lock(req: LockRequest, opts: LockOptions): LockResult {
    checkRange(req)
    const key = ownerKey(req.owner)
    const f = this.files.get(req.file)
    const holder = f?.firstConflict(req, key)
    if (f === undefined || holder === undefined) return this.grantNow(f, req, key)
    if (!opts.block) return { status: 'denied', holder }
    const dup = f.findWaiter(req, key)
    // A retransmission is checked again: since it was queued, a lock granted
    // without waiting to an owner it waits for may have closed a cycle.
    if (closesCycle(key, f.blockers(req, key), (o) => this.waitsFor(o))) {
      if (dup !== undefined) this.dequeue(f, dup)
      return { status: 'deadlock' }
    }
    if (dup !== undefined) {
      dup.onGranted = opts.onGranted
      return { status: 'blocked' }
    }
    if (!this.counts.room(this.limits, req.owner.client, f, { waiting: 1 })) return { status: 'nolocks' }
    const owner = keepOwner(req.owner)
    const w: Waiter = { req: { file: req.file, owner, start: req.start, end: req.end, exclusive: req.exclusive }, key, onGranted: opts.onGranted }
    f.waiters.push(w)
    let mine = this.queued.get(key)
    if (mine === undefined) this.queued.set(key, (mine = new Set()))
    mine.add(w)
    this.counts.add(owner.client, f.file, { waiting: 1 })
    return { status: 'blocked' }
  }

  /** NLM CANCEL: withdraws the queued request equal in file, owner, range and mode. */
  cancel(req: LockRequest): boolean {
    checkRange(req)
    const f = this.files.get(req.file)
    const w = f?.findWaiter(req, ownerKey(req.owner))
    if (f === undefined || w === undefined) return false
    this.dequeue(f, w)
    this.dropIfEmpty(f)
    return true
  }

  /**
   * NLM UNLOCK: removes `range` from the owner's locks on `file`, splitting a
   * lock it falls inside, then grants the waiters that no longer conflict.
   * Unlocking what is not held is not an error. A split adds a range, so a
   * client at its limit gets nolocks for one and keeps its lock whole.
   */
  unlock(file: string, owner: LockOwner, range: LockRange): UnlockResult {
    checkRange(range)
    const key = ownerKey(owner)
    const f = this.files.get(file)
    const own = f?.rangesOf(key) ?? []
    if (f === undefined || own.length === 0) return 'unlocked'
    const next = carve(own, range)
    const d = next.length - own.length
    if (d > 0 && !this.counts.room(this.limits, owner.client, f, { held: d })) return 'nolocks'
    this.counts.add(owner.client, file, { held: f.setRanges(key, owner, next) })
    const granted = this.wake(f)
    this.dropIfEmpty(f)
    this.fire(granted)
    return 'unlocked'
  }

  /** NLM FREE_ALL, or the client rebooted (SM_NOTIFY): everything of `client` goes. Returns how many entries. */
  freeClient(client: string): number {
    return this.drop(this.counts.filesOf(client), (o) => o.client === client)
  }

  /** Everything of one owner, on one file or (null) on all its client's files. Returns how many entries. */
  freeOwner(file: string | null, owner: LockOwner): number {
    const key = ownerKey(owner)
    return this.drop(file === null ? this.counts.filesOf(owner.client) : [file], (_, k) => k === key)
  }

  /** NLM SHARE (shares.ts). An owner sharing again replaces its reservation; only other owners' can conflict. */
  share(req: ShareRequest): ShareResult {
    return addShare(this.files, this.counts, this.limits, req)
  }

  /** NLM UNSHARE: drops the owner's reservation on the file, whatever modes it names. */
  unshare(req: ShareRequest): void {
    removeShare(this.files, this.counts, req)
  }

  held(file: string): HeldLock[] {
    return this.files.get(file)?.heldLocks() ?? []
  }

  heldBy(client: string): HeldLock[] {
    return this.counts.filesOf(client).flatMap((name) => this.files.get(name)?.heldLocks((o) => o.client === client) ?? [])
  }

  /** Queued requests on `file`, first to be granted first. */
  waiting(file: string): LockRequest[] {
    return this.files.get(file)?.waiters.map((w) => w.req) ?? []
  }

  shares(file: string): ShareRequest[] {
    return [...(this.files.get(file)?.shares.values() ?? [])]
  }

  /** Clients with anything held, queued or shared: the ones a restart must hear from. */
  clients(): string[] {
    return this.counts.names()
  }

  /** Whether the client holds, waits for or shares anything (without listing every client). */
  holds(client: string): boolean {
    return this.counts.has(client)
  }

  get size(): TableSize {
    const { held, waiting, shares } = this.counts
    return { held, waiting, shares, files: this.files.size }
  }

  private grantNow(f: FileState | undefined, req: LockRequest, key: string): LockResult {
    const own = f?.rangesOf(key) ?? []
    const next = overlay(own, req)
    const d = next.length - own.length
    // Granted directly, a request satisfies its own queued copy (a retransmission
    // of one left queued at a limit), whose place is then free.
    const dup = f?.findWaiter(req, key)
    // Checked even for an upgrade or downgrade in place: one inside a larger lock splits it in three.
    if (!this.counts.room(this.limits, req.owner.client, f, { held: d, waiting: dup === undefined ? 0 : -1 })) return { status: 'nolocks' }
    const file = f ?? this.fileOf(req.file)
    if (dup !== undefined) this.dequeue(file, dup)
    this.counts.add(req.owner.client, req.file, { held: file.setRanges(key, req.owner, next) })
    this.fire(downgrades(own, req) ? this.wake(file) : [])
    return { status: 'granted' }
  }

  /**
   * Grants, in FIFO order, each queued request of `f` that no holder stands in
   * the way of. Fairness is kept simple: a request still in the way stays
   * queued without holding back later ones that fit (POSIX and Linux do the
   * same; an exclusive waiter can therefore wait out a stream of shared
   * locks). One whose grant would pass a limit (a split) also stays queued,
   * to be tried at the next unlock; a retransmission then gets nolocks. The
   * caller fires the grants once the table is consistent.
   */
  private wake(f: FileState): Grant[] {
    const granted: Grant[] = []
    for (let i = 0; i < f.waiters.length; ) {
      const w = f.waiters[i]
      if (w === undefined) break
      if (f.firstConflict(w.req, w.key) !== undefined) {
        i++
        continue
      }
      const own = f.rangesOf(w.key)
      const next = overlay(own, w.req)
      if (!this.counts.room(this.limits, w.req.owner.client, f, { held: next.length - own.length, waiting: -1 })) {
        i++
        continue
      }
      this.dequeue(f, w)
      this.counts.add(w.req.owner.client, f.file, { held: f.setRanges(w.key, w.req.owner, next) })
      granted.push({ lock: f.heldLock(w.req.owner, w.req), onGranted: w.onGranted })
      // A downgrade frees bytes earlier waiters may want: look again from the front.
      if (downgrades(own, w.req)) i = 0
    }
    return granted
  }

  /** Calls the callbacks in order; one that throws does not cost the others theirs. */
  private fire(granted: readonly Grant[]): void {
    const errors: unknown[] = []
    for (const g of granted) {
      try {
        g.onGranted?.(g.lock)
      } catch (err) {
        errors.push(err)
      }
    }
    if (errors.length > 0) throw errors[0]
  }

  /** Removes whatever `pick` selects from `files`, then grants the waiters that were behind it. */
  private drop(files: readonly string[], pick: (owner: LockOwner, key: string) => boolean): number {
    let n = 0
    const touched: FileState[] = []
    for (const name of files) {
      const f = this.files.get(name)
      if (f === undefined) continue
      touched.push(f)
      // Deleting the entry being visited is safe while iterating a Map.
      for (const [key, own] of f.owners) {
        if (!pick(own.owner, key)) continue
        n += own.ranges.length
        this.counts.add(own.owner.client, name, { held: f.setRanges(key, own.owner, []) })
      }
      for (const w of [...f.waiters]) {
        if (!pick(w.req.owner, w.key)) continue
        this.dequeue(f, w)
        n++
      }
      for (const [key, s] of f.shares) {
        if (!pick(s.owner, key)) continue
        f.shares.delete(key)
        this.counts.add(s.owner.client, name, { shares: -1 })
        n++
      }
    }
    const granted = touched.flatMap((f) => this.wake(f))
    for (const f of touched) this.dropIfEmpty(f)
    this.fire(granted)
    return n
  }

  private dequeue(f: FileState, w: Waiter): void {
    f.removeWaiter(w)
    const mine = this.queued.get(w.key)
    mine?.delete(w)
    if (mine?.size === 0) this.queued.delete(w.key)
    this.counts.add(w.req.owner.client, f.file, { waiting: -1 })
  }

  /** The owners that `owner`'s queued requests wait for. */
  private *waitsFor(owner: string): Generator<string> {
    for (const w of this.queued.get(owner) ?? []) yield* this.files.get(w.req.file)?.blockers(w.req, owner) ?? []
  }

  private fileOf(name: string): FileState {
    let f = this.files.get(name)
    if (f === undefined) this.files.set(name, (f = new FileState(name)))
    return f
  }

  private dropIfEmpty(f: FileState): void {
    if (f.empty) this.files.delete(f.file)
  }
}
