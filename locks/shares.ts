/*
 * DOS share reservations (NLM SHARE/UNSHARE, from X/Open XNFS): an open
 * declares what it does (access) and what it forbids others (deny), each a
 * mask of 1 = read and 2 = write. They live beside the byte-range locks, in
 * the same FileState and under the same limits, and never interact with them.
 * One share per owner and file: an owner that shares again replaces its
 * reservation, as the kernel's lockd does.
 */
import type { Counts } from './counts.ts'
import { FileState } from './file-state.ts'
import { keepOwner, ownerKey } from './owner.ts'
import type { LockLimits, ShareRequest, ShareResult } from './types.ts'

/** Throws unless access and deny are 2-bit masks: the NLM layer checks fsh_mode/fsh_access first. */
function checkShare(req: ShareRequest): void {
  for (const m of [req.access, req.deny]) {
    if (!Number.isInteger(m) || m < 0 || m > 3) throw new RangeError(`share mode ${m} is not a mask of read (1) and write (2)`)
  }
}

/**
 * Whether `req` conflicts with another owner's share: it wants access that
 * share denies, or denies access that share has. The owner's own share does
 * not count: it is being replaced.
 */
function conflicts(shares: ReadonlyMap<string, ShareRequest>, req: ShareRequest, key: string): boolean {
  for (const [k, s] of shares) {
    if (k !== key && ((req.access & s.deny) !== 0 || (req.deny & s.access) !== 0)) return true
  }
  return false
}

/** LockTable.share: `files` and `counts` are the table's own. */
export function addShare(files: Map<string, FileState>, counts: Counts, limits: LockLimits, req: ShareRequest): ShareResult {
  checkShare(req)
  const key = ownerKey(req.owner)
  let f = files.get(req.file)
  if (f !== undefined && conflicts(f.shares, req, key)) return 'denied'
  const replacing = f?.shares.has(key) === true
  if (!replacing && !counts.room(limits, req.owner.client, f, { shares: 1 })) return 'nolocks'
  if (f === undefined) files.set(req.file, (f = new FileState(req.file)))
  f.shares.set(key, { file: req.file, owner: keepOwner(req.owner), access: req.access, deny: req.deny })
  if (!replacing) counts.add(req.owner.client, req.file, { shares: 1 })
  return 'granted'
}

/** LockTable.unshare: drops the owner's reservation on the file, whatever modes the request names. */
export function removeShare(files: Map<string, FileState>, counts: Counts, req: ShareRequest): void {
  const f = files.get(req.file)
  if (f === undefined || !f.shares.delete(ownerKey(req.owner))) return
  counts.add(req.owner.client, req.file, { shares: -1 })
  if (f.empty) files.delete(req.file)
}
