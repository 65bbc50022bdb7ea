/*
 * Everything the table keeps for one file: each owner's held ranges, the
 * queue of blocked requests (FIFO), and the share reservations. The table
 * drops a FileState as soon as it is empty, so memory follows what is held.
 */
import { keepOwner } from './owner.ts'
import type { ModeRange } from './ranges.ts'
import type { HeldLock, LockOwner, LockRequest, ShareRequest } from './types.ts'

/** One owner's locks on the file, in the form locks/ranges.ts keeps (sorted, disjoint, merged). */
export interface OwnerLocks {
  readonly owner: LockOwner
  ranges: readonly ModeRange[]
}

/** A queued blocking request. onGranted is replaced when the client retransmits the request. */
export interface Waiter {
  readonly req: LockRequest
  readonly key: string
  onGranted: ((lock: HeldLock) => void) | undefined
}

export class FileState {
  readonly file: string
  /** By owner key. */
  readonly owners = new Map<string, OwnerLocks>()
  /** Held ranges over all owners: the per-file limit is checked without a walk. */
  held = 0
  readonly waiters: Waiter[] = []
  /** By owner key: one reservation per owner. */
  readonly shares = new Map<string, ShareRequest>()

  constructor(file: string) {
    this.file = file
  }

  get empty(): boolean {
    return this.held === 0 && this.waiters.length === 0 && this.shares.size === 0
  }

  rangesOf(key: string): readonly ModeRange[] {
    return this.owners.get(key)?.ranges ?? []
  }

  /**
   * The conflicting lock with the lowest start (another owner's, overlapping,
   * one of the two exclusive), so a TEST reply names the first byte in the way.
   */
  firstConflict(req: LockRequest, key: string): HeldLock | undefined {
    let best: HeldLock | undefined
    for (const [k, own] of this.owners) {
      if (k === key) continue
      for (const r of own.ranges) {
        if (r.start >= req.end || (best !== undefined && r.start >= best.start)) break
        if (r.end > req.start && (req.exclusive || r.exclusive)) {
          best = this.heldLock(own.owner, r)
          break
        }
      }
    }
    return best
  }

  /** The owners whose locks stand in req's way: its edges in the waits-for graph. */
  blockers(req: LockRequest, key: string): string[] {
    const out: string[] = []
    for (const [k, own] of this.owners) {
      if (k === key) continue
      for (const r of own.ranges) {
        if (r.start >= req.end) break
        if (r.end > req.start && (req.exclusive || r.exclusive)) {
          out.push(k)
          break
        }
      }
    }
    return out
  }

  /** Replaces an owner's ranges (copying the owner on first sight); returns the change in count. */
  setRanges(key: string, owner: LockOwner, ranges: readonly ModeRange[]): number {
    const own = this.owners.get(key)
    const delta = ranges.length - (own?.ranges.length ?? 0)
    if (ranges.length === 0) this.owners.delete(key)
    else if (own === undefined) this.owners.set(key, { owner: keepOwner(owner), ranges })
    else own.ranges = ranges
    this.held += delta
    return delta
  }

  /** The queued request equal in owner, range and mode, if any (a retransmission or a CANCEL). */
  findWaiter(req: LockRequest, key: string): Waiter | undefined {
    return this.waiters.find((w) => w.key === key && w.req.start === req.start && w.req.end === req.end && w.req.exclusive === req.exclusive)
  }

  removeWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i >= 0) this.waiters.splice(i, 1)
  }

  heldLock(owner: LockOwner, r: ModeRange): HeldLock {
    return { file: this.file, owner, start: r.start, end: r.end, exclusive: r.exclusive }
  }

  /** Held locks of the owners `pick` selects, by owner then start. */
  heldLocks(pick: (owner: LockOwner) => boolean = () => true): HeldLock[] {
    const out: HeldLock[] = []
    for (const own of this.owners.values()) {
      if (pick(own.owner)) for (const r of own.ranges) out.push(this.heldLock(own.owner, r))
    }
    return out
  }
}
