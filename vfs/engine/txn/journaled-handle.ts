import type { BufferCache, CacheEntry } from './buffer-cache.ts'
import { TxnError } from './txn.ts'
import type { MetaTxn } from './txn.ts'
import type { Caller } from '../../types.ts'

/** The transaction handles join: what it changed so far, and who is still inside it. */
export interface OpenTxn {
  readonly tid: number
  /** Blocks to log, each pinned once for this transaction. */
  readonly dirty: Map<number, CacheEntry>
  readonly revokes: Set<number>
  readonly after: Array<() => void>
  /** Handles not yet ended. */
  open: number
  /** A commit is waiting for `open` to reach 0: no handle may join. */
  locked: boolean
  /** Wakes the commit waiting for the last handle. */
  idle: Array<() => void>
}

export function openTxn(tid: number): OpenTxn {
  return { tid, dirty: new Map(), revokes: new Set(), after: [], open: 0, locked: false, idle: [] }
}

/**
 * One operation's handle. Every block it touches stays pinned until `end`, so a buffer it holds
 * across an await is never evicted from under it (a change to an evicted copy would be lost).
 */
export class JournalHandle implements MetaTxn {
  readonly tid: number
  caller?: Caller | undefined
  readonly #txn: OpenTxn
  readonly #cache: BufferCache
  readonly #aborted: () => TxnError | null
  readonly #held = new Map<number, CacheEntry>()
  #ended = false

  constructor(txn: OpenTxn, cache: BufferCache, aborted: () => TxnError | null) {
    this.tid = txn.tid
    this.#txn = txn
    this.#cache = cache
    this.#aborted = aborted
    txn.open++
  }

  async get(block: number): Promise<Buffer> {
    this.#check()
    const held = this.#held.get(block)
    if (held !== undefined) return held.data
    const loaded = await this.#cache.load(block)
    this.#check()
    // Two gets of one block by this handle may have overlapped: keep a single pin.
    const again = this.#held.get(block)
    if (again !== undefined) return again.data
    const e = this.#cache.pin(loaded)
    this.#held.set(block, e)
    return e.data
  }

  fresh(block: number): Buffer {
    this.#check()
    const e = this.#cache.fresh(block)
    const old = this.#held.get(block)
    if (old !== undefined) this.#cache.unpin(old)
    this.#held.set(block, e)
    this.#markDirty(block, e)
    return e.data
  }

  dirty(block: number): void {
    this.#check()
    const e = this.#held.get(block)
    if (e === undefined) throw new TxnError('TXN_NOT_HELD', `block ${block} marked dirty but not obtained through this handle`)
    this.#markDirty(block, e)
  }

  revoke(block: number): void {
    this.#check()
    const d = this.#txn.dirty.get(block)
    if (d !== undefined) {
      this.#txn.dirty.delete(block)
      this.#cache.unpin(d)
    }
    const h = this.#held.get(block)
    if (h !== undefined) {
      this.#held.delete(block)
      this.#cache.unpin(h)
    }
    this.#cache.drop(block)
    this.#txn.revokes.add(block)
  }

  afterCommit(fn: () => void): void {
    this.#check()
    this.#txn.after.push(fn)
  }

  inMemory(block: number): boolean {
    return this.#held.has(block) || this.#cache.has(block)
  }

  /** Called by the manager's end(): works even after an abort, so callers can always clean up. */
  finish(): void {
    if (this.#ended) throw new TxnError('TXN_ENDED', 'end() called twice on one handle')
    this.#ended = true
    for (const e of this.#held.values()) this.#cache.unpin(e)
    this.#held.clear()
    if (--this.#txn.open === 0) for (const wake of this.#txn.idle.splice(0)) wake()
  }

  #markDirty(block: number, e: CacheEntry): void {
    // jbd2 skips replaying a block revoked in the same transaction that logs it: logging it again
    // must cancel the revoke (jbd2_journal_cancel_revoke).
    this.#txn.revokes.delete(block)
    const cur = this.#txn.dirty.get(block)
    if (cur === e) return
    if (cur !== undefined) this.#cache.unpin(cur)
    this.#txn.dirty.set(block, this.#cache.pin(e))
  }

  #check(): void {
    if (this.#ended) throw new TxnError('TXN_ENDED', 'handle used after end()')
    const aborted = this.#aborted()
    if (aborted !== null) throw aborted
  }
}
