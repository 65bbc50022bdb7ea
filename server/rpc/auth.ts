/*
 * RFC 5531 §8.2, §10 and Appendix A: turn the call's credential and verifier
 * into Credentials, or refuse with an auth_stat. Only AUTH_NONE and AUTH_SYS
 * are accepted; a flavor a procedure finds too weak is the handler's business
 * (it throws RpcAuthError(AUTH_TOOWEAK)).
 */
import { XdrReader } from '../../xdr/runtime/reader.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { authsys_parms } from '../../xdr/rpc/auth.ts'
import { auth_flavor, auth_stat } from '../../xdr/rpc/constants.ts'
import { RpcAuthError } from './errors.ts'

export type Credentials =
  | { flavor: 'none' }
  | { flavor: 'sys'; uid: number; gid: number; gids: number[]; machinename: string }

const NONE: Credentials = Object.freeze({ flavor: 'none' })

export function authenticate(cred: OpaqueAuth, verf: OpaqueAuth): Credentials {
  if (cred.flavor === auth_flavor.AUTH_NONE) {
    // RFC 5531 §10.1: the AUTH_NONE body is undefined; accept any (<= 400, checked by the decoder) and ignore it.
    return NONE
  }
  if (cred.flavor === auth_flavor.AUTH_SYS) {
    // RFC 5531 Appendix A: the verifier that goes with AUTH_SYS is AUTH_NONE.
    if (verf.flavor !== auth_flavor.AUTH_NONE) throw new RpcAuthError(auth_stat.AUTH_BADVERF, `verifier flavor ${verf.flavor}`)
    const r = new XdrReader(cred.body)
    try {
      const p = authsys_parms.decode(r)
      r.done()
      // The name is a fresh string; gids a fresh array: nothing here points into the record.
      return { flavor: 'sys', uid: p.uid, gid: p.gid, gids: p.gids, machinename: p.machinename }
    } catch (err) {
      throw new RpcAuthError(auth_stat.AUTH_BADCRED, `authsys_parms: ${(err as Error).message}`)
    }
  }
  throw new RpcAuthError(auth_stat.AUTH_BADCRED, `credential flavor ${cred.flavor} not accepted`)
}
