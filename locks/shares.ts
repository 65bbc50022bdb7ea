/*
 * DOS share reservations (NLM SHARE/UNSHARE, from X/Open XNFS): an open
 * declares what it does (access) and what it forbids others (deny), each a
 * mask of 1 = read and 2 = write. They live beside the byte-range locks and
 * never interact with them. One share per owner and file: an owner that
 * shares again replaces its reservation, as the kernel's lockd does.
 */
import type { ShareRequest } from './types.ts'

/** Throws unless access and deny are 2-bit masks: the NLM layer checks fsh_mode/fsh_access first. */
export function checkShare(req: ShareRequest): void {
  for (const m of [req.access, req.deny]) {
    if (!Number.isInteger(m) || m < 0 || m > 3) throw new RangeError(`share mode ${m} is not a mask of read (1) and write (2)`)
  }
}

/**
 * The first other owner's share that `req` conflicts with: req wants access
 * that share denies, or req denies access that share has. `shares` is keyed
 * by owner key; the owner's own share does not count (it is being replaced).
 */
export function shareConflict(shares: ReadonlyMap<string, ShareRequest>, req: ShareRequest, key: string): ShareRequest | undefined {
  for (const [k, s] of shares) {
    if (k !== key && ((req.access & s.deny) !== 0 || (req.deny & s.access) !== 0)) return s
  }
  return undefined
}
