/*
 * What this client holds on one server: per file and owner, the ranges the
 * server granted. It is what SM_NOTIFY makes us reclaim after the server
 * restarts, what an unmount or a FUSE release lets go, and what GETLK
 * consults before asking. Bounded by what the server granted (its own
 * per-client limit caps it).
 */
import type { LockOwner, LockRange } from '../../locks/types.ts'
import { apply, subtract } from './ranges.ts'
import type { HeldRange } from './ranges.ts'

export interface OwnerLocks {
  /** The file's NFS handle (what NLM names it by). */
  readonly fh: Buffer
  readonly owner: LockOwner
  ranges: HeldRange[]
}

export function ownerKey(o: LockOwner): string {
  return `${String(o.svid)}/${o.oh.toString('hex')}`
}

export class HeldLocks {
  /** file key (handle hex) → owner key → locks. */
  private readonly files = new Map<string, Map<string, OwnerLocks>>()

  /** Record a granted lock (POSIX replace-and-merge within the owner). */
  add(fh: Buffer, owner: LockOwner, range: HeldRange): void {
    const key = fh.toString('hex')
    let owners = this.files.get(key)
    if (owners === undefined) {
      owners = new Map()
      this.files.set(key, owners)
    }
    const ok = ownerKey(owner)
    const held = owners.get(ok)
    if (held === undefined) owners.set(ok, { fh: Buffer.from(fh), owner, ranges: [range] })
    else held.ranges = apply(held.ranges, range)
  }

  /** Forget a range (after UNLOCK). */
  remove(fh: Buffer, owner: LockOwner, range: LockRange): void {
    const key = fh.toString('hex')
    const owners = this.files.get(key)
    const ok = ownerKey(owner)
    const held = owners?.get(ok)
    if (owners === undefined || held === undefined) return
    held.ranges = subtract(held.ranges, range)
    if (held.ranges.length > 0) return
    owners.delete(ok)
    if (owners.size === 0) this.files.delete(key)
  }

  /** The ranges an owner holds on a file (sorted). */
  of(fh: Buffer, owner: LockOwner): readonly HeldRange[] {
    return this.files.get(fh.toString('hex'))?.get(ownerKey(owner))?.ranges ?? []
  }

  /** Every (file, owner) with what it holds, for reclaim and release. */
  all(): OwnerLocks[] {
    const out: OwnerLocks[] = []
    for (const owners of this.files.values()) for (const h of owners.values()) out.push(h)
    return out
  }

  /** The owners matching `pick` (a FUSE lock owner's locks on every file, say). */
  owned(pick: (o: LockOwner) => boolean): OwnerLocks[] {
    return this.all().filter(h => pick(h.owner))
  }

  get size(): number {
    let n = 0
    for (const owners of this.files.values()) for (const h of owners.values()) n += h.ranges.length
    return n
  }
}
