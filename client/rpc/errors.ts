/** Stable codes for everything an RPC call can fail with (the undici error model). */
export type RpcErrorCode =
  | 'RPC_TIMEOUT'
  | 'RPC_CONNECTION_CLOSED'
  | 'RPC_PROG_UNAVAIL'
  | 'RPC_PROG_MISMATCH'
  | 'RPC_PROC_UNAVAIL'
  | 'RPC_GARBAGE_ARGS'
  | 'RPC_SYSTEM_ERR'
  | 'RPC_MISMATCH'
  | 'RPC_AUTH_ERROR'
  /** The reply did not decode (bad header or results). */
  | 'RPC_BAD_REPLY'
  /** The reply is larger than the client's receive limit (rsize and the READDIR sizes plus headroom); only that call fails. */
  | 'RPC_REPLY_TOO_LARGE'
  /** The portmapper has no port for the program, version and protocol asked (GETPORT returned 0). */
  | 'RPC_PROG_NOT_REGISTERED'

export interface RpcErrorDetails {
  xid?: number
  /** Supported versions, for RPC_PROG_MISMATCH and RPC_MISMATCH. */
  low?: number
  high?: number
  /** auth_stat, for RPC_AUTH_ERROR. */
  authStat?: number
  cause?: unknown
}

export class RpcError extends Error {
  readonly code: RpcErrorCode
  readonly xid: number | undefined
  readonly low: number | undefined
  readonly high: number | undefined
  readonly authStat: number | undefined

  constructor(code: RpcErrorCode, message: string, details: RpcErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'RpcError'
    this.code = code
    this.xid = details.xid
    this.low = details.low
    this.high = details.high
    this.authStat = details.authStat
  }
}
