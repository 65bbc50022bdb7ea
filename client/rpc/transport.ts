/*
 * The one interface the layers above the RPC client use, whatever the
 * transport: a call in, typed results or an RpcError out. TCP reconnects and
 * re-sends; UDP retransmits; both follow the same retry policy.
 */
import type { CallCredential } from './auth.ts'
import type { ProcedureRef } from './call.ts'

export interface TransportCallOptions {
  cred?: CallCredential
  /** Override the policy's per-try timeout for this call (ms). */
  timeoutMs?: number
}

/** What a transport did, for stats. */
export interface TransportCounters {
  /** Calls sent again with the same xid (after a timeout, or after a reconnect). */
  retransmits: number
  /** Connections re-established after one broke (TCP). */
  reconnects: number
  /** Per-try timeouts (a soft call fails after retrans + 1 of them). */
  timeouts: number
}

export interface RpcTransport {
  readonly protocol: 'tcp' | 'udp'
  /** Calls sent and waiting for a reply. */
  readonly inFlight: number
  call<A, R>(prog: number, vers: number, proc: ProcedureRef<A, R>, args: A, opts?: TransportCallOptions): Promise<R>
  counters(): TransportCounters
  /** Outstanding calls fail with RPC_CONNECTION_CLOSED. */
  close(): Promise<void>
}

/**
 * When to give up (nfs(5) timeo/retrans/hard/soft). A try lasts timeoutMs; TCP
 * grows it linearly per retry, UDP doubles it, both up to maxTimeoutMs. Soft:
 * RPC_TIMEOUT after retrans retransmissions. Hard: never time out; keep
 * retransmitting and reconnecting (capped backoff), like a Linux hard mount.
 */
export interface RetryPolicy {
  timeoutMs: number
  retrans: number
  hard: boolean
  maxTimeoutMs: number
  /** Ceiling of the TCP reconnect backoff (starts at 100 ms, doubles). */
  maxReconnectDelayMs: number
}

/** Linux's defaults, except soft (as libnfs) so a library call cannot hang forever unless asked to. */
export const DEFAULT_TCP_POLICY: RetryPolicy = { timeoutMs: 60_000, retrans: 2, hard: false, maxTimeoutMs: 600_000, maxReconnectDelayMs: 5_000 }
export const DEFAULT_UDP_POLICY: RetryPolicy = { timeoutMs: 1_100, retrans: 3, hard: false, maxTimeoutMs: 60_000, maxReconnectDelayMs: 5_000 }
