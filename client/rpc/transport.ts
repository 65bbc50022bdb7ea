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
  /**
   * Largest reply accepted, in bytes; a larger one fails its call with
   * RPC_REPLY_TOO_LARGE. Set once the transfer sizes are known (FSINFO);
   * absent where the transport's own unit bounds replies (a UDP datagram).
   */
  maxReplySize?: number
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

/** Where a transport reports its server's state (a pino logger fits). */
export interface RpcLog {
  warn(msg: string): void
}

/** The default RpcLog: lines on stderr, where the kernel client's would go to its log. */
export const STDERR_LOG: RpcLog = {
  warn: msg => {
    process.stderr.write(`${msg}\n`)
  },
}

/**
 * A hard mount's "server not responding, still trying" when a call passes
 * its major timeout (retrans retransmissions without a reply), and "OK" at
 * the next reply, once per outage, as the Linux client logs them
 * (net/sunrpc/clnt.c, call_timeout and call_decode).
 */
export class ServerStatus {
  private readonly host: string
  private readonly log: RpcLog
  private down = false

  constructor(host: string, log: RpcLog) {
    this.host = host
    this.log = log
  }

  get responding(): boolean {
    return !this.down
  }

  majorTimeout(): void {
    if (this.down) return
    this.down = true
    this.log.warn(`nfs: server ${this.host} not responding, still trying`)
  }

  replied(): void {
    if (!this.down) return
    this.down = false
    this.log.warn(`nfs: server ${this.host} OK`)
  }
}

/** Linux's defaults, except soft (as libnfs) so a library call cannot hang forever unless asked to. */
export const DEFAULT_TCP_POLICY: RetryPolicy = { timeoutMs: 60_000, retrans: 2, hard: false, maxTimeoutMs: 600_000, maxReconnectDelayMs: 5_000 }
export const DEFAULT_UDP_POLICY: RetryPolicy = { timeoutMs: 1_100, retrans: 3, hard: false, maxTimeoutMs: 60_000, maxReconnectDelayMs: 5_000 }
