/* Build CALL records and turn REPLY records into values or RpcErrors (RFC 5531 §9). */
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH } from '../../xdr/rpc/auth.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { encodeCallHeader } from '../../xdr/rpc/message.ts'
import { decodeReplyHeader } from '../../xdr/rpc/reply.ts'
import type { ReplyHeader } from '../../xdr/rpc/reply.ts'
import { RpcError } from './errors.ts'

/** What a call needs from a procedure: a generated ProcedureDef fits, or a literal. */
export interface ProcedureRef<A, R> {
  readonly proc: number
  readonly args: Codec<A>
  readonly res: Codec<R>
}

/**
 * xids identify calls, not order (RFC 5531 §9); start at a random point so
 * restarts do not collide in a server's DRC. Math.random, not node:crypto:
 * the start needs no secrecy (the xids after it are sequential anyway), and
 * loading crypto cost every command ~7 ms of its start-up.
 */
export class XidSource {
  private next = Math.floor(Math.random() * 0x7fff_ffff)
  take(): number {
    const xid = this.next
    this.next = (this.next + 1) >>> 0
    return xid
  }
}

export function encodeCall<A>(xid: number, prog: number, vers: number, p: ProcedureRef<A, unknown>, args: A, cred: OpaqueAuth): Buffer[] {
  const w = new XdrWriter(256)
  encodeCallHeader(w, { xid, prog, vers, proc: p.proc, cred, verf: AUTH_NONE_AUTH })
  p.args.encode(w, args)
  return w.finish()
}

/** Decode a reply record: the results on SUCCESS, else the matching RpcError is thrown. */
export function decodeReply<R>(record: Buffer, res: Codec<R>): R {
  const r = new XdrReader(record)
  let h: ReplyHeader
  try {
    h = decodeReplyHeader(r)
  } catch (err) {
    throw new RpcError('RPC_BAD_REPLY', `undecodable reply header: ${(err as Error).message}`, { cause: err })
  }
  const xid = h.xid
  switch (h.kind) {
    case 'SUCCESS':
      try {
        const value = res.decode(r)
        r.done()
        return value
      } catch (err) {
        throw new RpcError('RPC_BAD_REPLY', `undecodable results: ${(err as Error).message}`, { xid, cause: err })
      }
    case 'PROG_UNAVAIL':
      throw new RpcError('RPC_PROG_UNAVAIL', 'program unavailable', { xid })
    case 'PROG_MISMATCH':
      throw new RpcError('RPC_PROG_MISMATCH', `program version mismatch (server has ${h.low}..${h.high})`, { xid, low: h.low, high: h.high })
    case 'PROC_UNAVAIL':
      throw new RpcError('RPC_PROC_UNAVAIL', 'procedure unavailable', { xid })
    case 'GARBAGE_ARGS':
      throw new RpcError('RPC_GARBAGE_ARGS', 'server could not decode the arguments', { xid })
    case 'SYSTEM_ERR':
      throw new RpcError('RPC_SYSTEM_ERR', 'server system error', { xid })
    case 'RPC_MISMATCH':
      throw new RpcError('RPC_MISMATCH', `RPC version mismatch (server has ${h.low}..${h.high})`, { xid, low: h.low, high: h.high })
    case 'AUTH_ERROR':
      throw new RpcError('RPC_AUTH_ERROR', `authentication error (auth_stat ${h.stat})`, { xid, authStat: h.stat })
  }
}
