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

/**
 * Each credential's encoding, kept for the second its stamp names: every
 * call of a caller sends the same bytes, so they are encoded once a second
 * instead of once a call (a mount daemon makes 3 calls per copied file, as
 * many identities as callers). Credentials are not changed once made.
 */
const encoded = new WeakMap<AuthSys, { second: number; auth: OpaqueAuth }>()

export function credentialOf(c: CallCredential | undefined): OpaqueAuth {
  if (c === undefined || c === 'none') return AUTH_NONE_AUTH
  const second = c.stamp ?? Math.floor(Date.now() / 1000) >>> 0
  const kept = encoded.get(c)
  if (kept !== undefined && kept.second === second) return kept.auth
  const auth = authSys({ ...c, stamp: second })
  encoded.set(c, { second, auth })
  return auth
}
