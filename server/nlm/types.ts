/*
 * What the NLM program works with once the wire's version differences are
 * gone (convert.ts): one lock description with 64-bit bounds, the v4 status
 * numbers, and the two seams to the rest of the server — the status monitor
 * (server/nsm) and the caller that reaches a client's own lock manager.
 */
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { Transport } from '../rpc/program.ts'

/** RFC 1813 §6.1.4 nlm4_stats; versions 1 and 3 map onto these (convert.ts). */
export const NLM = {
  GRANTED: 0,
  DENIED: 1,
  DENIED_NOLOCKS: 2,
  BLOCKED: 3,
  DENIED_GRACE_PERIOD: 4,
  DEADLCK: 5,
  ROFS: 6,
  STALE_FH: 7,
  FBIG: 8,
  FAILED: 9,
} as const
export type NlmStat = (typeof NLM)[keyof typeof NLM]

/** A lock as every version describes it: the range is [start, end), end LOCK_EOF for "to end of file". */
export interface NlmLock {
  callerName: string
  fh: Buffer
  oh: Buffer
  svid: number
  start: bigint
  end: bigint
}

export interface NlmHolder {
  exclusive: boolean
  svid: number
  oh: Buffer
  start: bigint
  end: bigint
}

/** The status monitor as the lock manager uses it (server/nsm implements it). */
export interface PeerMonitor {
  /** Watch this client so its restart (SM_NOTIFY) frees its locks, and it is told of ours. */
  monitor(name: string, address: string): Promise<void>
  unmonitor(name: string): Promise<void>
}

/** Where a client's lock manager is: its address and the transport its request came on. */
export interface PeerTarget {
  address: string
  transport: Transport
  vers: number
}

/** Calls a client's NLM (found through its portmapper): GRANTED and the _RES messages. */
export interface PeerCaller {
  call<A, R>(to: PeerTarget, proc: number, args: Codec<A>, argv: A, res: Codec<R>): Promise<R>
  /** A message whose reply is not awaited (the _MSG/_RES forms, RFC 1813 §6.2). */
  send<A>(to: PeerTarget, proc: number, args: Codec<A>, argv: A): Promise<void>
}
