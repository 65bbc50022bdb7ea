import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { AUTH_NONE_AUTH, authsys_parms } from '../../xdr/rpc/auth.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { auth_flavor } from '../../xdr/rpc/constants.ts'

/** What an AUTH_SYS caller claims to be (RFC 5531 Appendix A). */
export interface AuthSys {
  uid: number
  gid: number
  gids?: number[]
  machinename?: string
  /** Arbitrary; defaults to the current time in seconds. */
  stamp?: number
}

export type CallCredential = AuthSys | 'none'

export function authSys(a: AuthSys): OpaqueAuth {
  const body = encodeToBuffer(authsys_parms, {
    stamp: a.stamp ?? Math.floor(Date.now() / 1000) >>> 0,
    machinename: a.machinename ?? 'localhost',
    uid: a.uid,
    gid: a.gid,
    // Linux sends at most 16 supplementary groups; more would not decode at the server.
    gids: (a.gids ?? []).slice(0, 16),
  })
  return { flavor: auth_flavor.AUTH_SYS, body }
}

export function credentialOf(c: CallCredential | undefined): OpaqueAuth {
  return c === undefined || c === 'none' ? AUTH_NONE_AUTH : authSys(c)
}
