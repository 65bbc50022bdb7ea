/*
 * The bytes of an outbound call and the checks on its reply, shared by the
 * stream and datagram callers (RFC 5531 §9).
 */
import { randomInt } from 'node:crypto'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH } from '../../xdr/rpc/auth.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { encodeCallHeader } from '../../xdr/rpc/message.ts'
import { decodeReplyHeader } from '../../xdr/rpc/reply.ts'
import { PeerCallError } from './errors.ts'

export interface ProcRef {
  prog: number
  vers: number
  proc: number
}

/** Replies above this are refused before anything is allocated for them. */
export const DEFAULT_MAX_REPLY_BYTES = 64 * 1024

// One counter for the process, started at random so that a restarted server's xids do not
// match the replies a peer's duplicate request cache still holds for the previous one.
let lastXid = randomInt(0x7fff_ffff)

export function nextXid(): number {
  lastXid = (lastXid + 1) >>> 0
  return lastXid
}

/** The call message (no record mark) as chunks. */
export function encodeCall<A>(xid: number, p: ProcRef, args: Codec<A>, argv: A, cred: OpaqueAuth = AUTH_NONE_AUTH): Buffer[] {
  const w = new XdrWriter(256)
  encodeCallHeader(w, { xid, prog: p.prog, vers: p.vers, proc: p.proc, cred, verf: AUTH_NONE_AUTH })
  args.encode(w, argv)
  return w.finish()
}

/** The xid of a reply, or -1 when it is too short to hold one. */
export function xidOf(reply: Buffer): number {
  return reply.length >= 4 ? reply.readUInt32BE(0) : -1
}

/** Decode a reply already matched to its call by xid; throws PeerCallError. */
export function decodeReply<R>(reply: Buffer, res: Codec<R>, what: string): R {
  const r = new XdrReader(reply)
  let result: R
  try {
    const h = decodeReplyHeader(r)
    if (h.kind !== 'SUCCESS') throw new PeerCallError('CALL_RPC_ERROR', `${what} was answered ${h.kind}`, { reply: h })
    result = res.decode(r)
  } catch (err) {
    if (err instanceof PeerCallError) throw err
    throw new PeerCallError('CALL_BAD_REPLY', `bad reply from ${what}: ${(err as Error).message}`, { cause: err })
  }
  return result
}
