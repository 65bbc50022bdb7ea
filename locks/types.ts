/*
 * The lock table's vocabulary. locks/ knows nothing of RPC, NLM or FUSE: the
 * server's NLM program and the client's lock bookkeeping both stack on it.
 * Offsets are bigint because NLM v4 ranges are 64-bit (RFC 1813 §6.1.4).
 */

/** One past the last byte a lock can cover: a range "to end of file" ends here. */
export const LOCK_EOF = 1n << 64n

/**
 * Who holds a lock. Two requests of the same owner never conflict (POSIX: one
 * process's locks merge and replace each other). `client` names the host
 * (NLM caller_name); `svid` and `oh` name the process on it.
 */
export interface LockOwner {
  readonly client: string
  readonly svid: number
  readonly oh: Buffer
}

/** A byte range [start, end); end is LOCK_EOF for "to end of file". start < end. */
export interface LockRange {
  readonly start: bigint
  readonly end: bigint
}

export interface HeldLock extends LockRange {
  readonly file: string
  readonly owner: LockOwner
  readonly exclusive: boolean
}

/** A request: which file (an opaque key the caller chooses), whose, what kind, which bytes. */
export interface LockRequest extends LockRange {
  readonly file: string
  readonly owner: LockOwner
  readonly exclusive: boolean
}

export type TestResult = { readonly ok: true } | { readonly ok: false; readonly holder: HeldLock }

/**
 * granted: the lock is held now. denied: a conflicting holder (non-blocking).
 * blocked: queued; onGranted fires when it is granted (a retransmission of a
 * request already queued answers blocked again and is not queued twice).
 * nolocks: a limit was hit. deadlock: waiting would close a cycle of owners
 * waiting on each other.
 */
export type LockResult =
  | { readonly status: 'granted' }
  | { readonly status: 'denied'; readonly holder: HeldLock }
  | { readonly status: 'blocked' }
  | { readonly status: 'nolocks' }
  | { readonly status: 'deadlock' }

/** DOS share reservations (NLM SHARE): access and deny are 2-bit masks, 1 = read, 2 = write. */
export interface ShareRequest {
  readonly file: string
  readonly owner: LockOwner
  readonly access: number
  readonly deny: number
}

export type ShareResult = 'granted' | 'denied' | 'nolocks'

/** nolocks: the unlock would split a lock in two and the client is at a limit; nothing changed. */
export type UnlockResult = 'unlocked' | 'nolocks'

export interface LockLimits {
  /** Held ranges, queued requests and shares per client: beyond it, nolocks. */
  readonly maxPerClient: number
  /** Held ranges (all owners) and shares per file. */
  readonly maxPerFile: number
  /** Queued requests per file. */
  readonly maxWaitersPerFile: number
  /** All held ranges, queued requests and shares together. */
  readonly maxTotal: number
}

export const DEFAULT_LOCK_LIMITS: LockLimits = {
  maxPerClient: 4096,
  maxPerFile: 4096,
  maxWaitersPerFile: 1024,
  maxTotal: 262_144,
}
