import type { ReplyHeader } from '../../xdr/rpc/reply.ts'

/**
 * Why an outbound call failed. Stable codes: the NLM and NSM decide from
 * them whether to retry (timeout, unreachable, closed) or to give up (an
 * RPC-level answer, a bad reply).
 */
export type PeerCallErrorCode =
  /** No reply within the timeout, after every retry. */
  | 'CALL_TIMEOUT'
  /** The connection was refused or failed (ICMP port unreachable on UDP, ECONNREFUSED on TCP, no route). */
  | 'CALL_UNREACHABLE'
  /** The peer closed the connection before it answered. */
  | 'CALL_CLOSED'
  /** The peer answered with an RPC error: `status` says which (PROG_UNAVAIL, AUTH_ERROR, ...). */
  | 'CALL_RPC_ERROR'
  /** The reply did not decode (not a reply, bad enum, truncated results). */
  | 'CALL_BAD_REPLY'
  /** The reply was larger than maxReplyBytes; nothing was allocated for it. */
  | 'CALL_REPLY_TOO_LARGE'
  /** The caller's AbortSignal fired. */
  | 'CALL_ABORTED'
  /** The peer's portmapper answered port 0 for the program. */
  | 'CALL_NOT_REGISTERED'

/** The reply kinds other than SUCCESS. */
export type RpcErrorStatus = Exclude<ReplyHeader['kind'], 'SUCCESS'>

export class PeerCallError extends Error {
  readonly code: PeerCallErrorCode
  /** For CALL_RPC_ERROR: the accept or reject status of the reply. */
  readonly status: RpcErrorStatus | undefined
  /** For CALL_RPC_ERROR: the reply header (PROG_MISMATCH's low/high, AUTH_ERROR's auth_stat). */
  readonly reply: Exclude<ReplyHeader, { kind: 'SUCCESS' }> | undefined

  constructor(code: PeerCallErrorCode, message: string, options?: ErrorOptions & { reply?: Exclude<ReplyHeader, { kind: 'SUCCESS' }> }) {
    super(message, options)
    this.name = 'PeerCallError'
    this.code = code
    this.reply = options?.reply
    this.status = options?.reply?.kind
  }
}

/** Failures worth another try later (the peer may come back), as opposed to an answer that will not change. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof PeerCallError)) return false
  return err.code === 'CALL_TIMEOUT' || err.code === 'CALL_UNREACHABLE' || err.code === 'CALL_CLOSED'
}
