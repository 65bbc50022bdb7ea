import type { Codec } from '../runtime/codec.ts'
import { XdrEncodeError } from '../runtime/errors.ts'
import type { XdrReader } from '../runtime/reader.ts'
import type { XdrWriter } from '../runtime/writer.ts'
import { MAX_AUTH_BYTES, auth_flavor } from './constants.ts'

/** RFC 5531 §8.2: opaque_auth. The body is a view into the record. */
export interface OpaqueAuth {
  flavor: number
  body: Buffer
}

export const AUTH_NONE_AUTH: OpaqueAuth = Object.freeze({ flavor: auth_flavor.AUTH_NONE, body: Buffer.alloc(0) })

export function decodeOpaqueAuth(r: XdrReader): OpaqueAuth {
  const flavor = r.u32()
  const body = r.opaque(MAX_AUTH_BYTES)
  return { flavor, body }
}

export function encodeOpaqueAuth(w: XdrWriter, a: OpaqueAuth): void {
  w.u32(a.flavor)
  w.opaque(a.body, MAX_AUTH_BYTES)
}

export const opaque_auth: Codec<OpaqueAuth> = { encode: encodeOpaqueAuth, decode: decodeOpaqueAuth }

/** RFC 5531 Appendix A: the body of an AUTH_SYS credential. */
export interface AuthSysParms {
  stamp: number
  machinename: string
  uid: number
  gid: number
  gids: number[]
}

export const AUTHSYS_MAX_MACHINENAME = 255
export const AUTHSYS_MAX_GIDS = 16

export const authsys_parms: Codec<AuthSysParms> = {
  encode(w, v) {
    w.u32(v.stamp)
    w.string(v.machinename, AUTHSYS_MAX_MACHINENAME)
    w.u32(v.uid)
    w.u32(v.gid)
    if (v.gids.length > AUTHSYS_MAX_GIDS) {
      throw new XdrEncodeError(`authsys_parms: ${v.gids.length} gids, at most ${AUTHSYS_MAX_GIDS}`)
    }
    w.u32(v.gids.length)
    for (const g of v.gids) w.u32(g)
  },
  decode(r) {
    const stamp = r.u32()
    const machinename = r.string(AUTHSYS_MAX_MACHINENAME)
    const uid = r.u32()
    const gid = r.u32()
    const n = r.arrayLength(AUTHSYS_MAX_GIDS, 4)
    const gids: number[] = []
    for (let i = 0; i < n; i++) gids.push(r.u32())
    return { stamp, machinename, uid, gid, gids }
  },
}
