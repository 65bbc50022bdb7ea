import type { AuthStat } from '../../xdr/rpc/constants.ts'

/** Thrown by a handler (or by auth) to answer MSG_DENIED / AUTH_ERROR with this auth_stat. */
export class RpcAuthError extends Error {
  readonly code = 'RPC_AUTH_ERROR'
  readonly stat: AuthStat
  constructor(stat: AuthStat, message = `auth_stat ${stat}`) {
    super(message)
    this.name = 'RpcAuthError'
    this.stat = stat
  }
}

/** Thrown by a handler to answer accepted / SYSTEM_ERR without logging it as a bug. */
export class RpcSystemError extends Error {
  readonly code = 'RPC_SYSTEM_ERR'
  constructor(message = 'system error') {
    super(message)
    this.name = 'RpcSystemError'
  }
}
