/*
 * RFC 5531 §9: the REPLY side of rpc_msg (reply_body). An accepted reply
 * carries a verifier (AUTH_NONE here) before accept_stat; a rejected reply
 * carries no verifier at all.
 */
import { XdrDecodeError, XdrEncodeError } from '../runtime/errors.ts'
import type { XdrReader } from '../runtime/reader.ts'
import type { XdrWriter } from '../runtime/writer.ts'
import { AUTH_NONE_AUTH, decodeOpaqueAuth, encodeOpaqueAuth } from './auth.ts'
import type { OpaqueAuth } from './auth.ts'
import { RPC_VERSION, accept_stat, msg_type, reject_stat, reply_stat } from './constants.ts'
import type { AcceptStat } from './constants.ts'

/**
 * MSG_ACCEPTED header with an AUTH_NONE verifier. For SUCCESS the result
 * codec's output follows; PROG_MISMATCH needs the supported low/high versions.
 */
export function encodeAcceptedReply(w: XdrWriter, xid: number, stat: AcceptStat, mismatch?: { low: number; high: number }): void {
  w.u32(xid)
  w.u32(msg_type.REPLY)
  w.u32(reply_stat.MSG_ACCEPTED)
  encodeOpaqueAuth(w, AUTH_NONE_AUTH)
  w.u32(stat)
  if (stat === accept_stat.PROG_MISMATCH) {
    if (mismatch === undefined) throw new XdrEncodeError('PROG_MISMATCH needs low and high')
    w.u32(mismatch.low)
    w.u32(mismatch.high)
  }
}

export type RejectedReply =
  | { stat: typeof reject_stat.RPC_MISMATCH; low: number; high: number }
  | { stat: typeof reject_stat.AUTH_ERROR; auth_stat: number }

/** MSG_DENIED: no verifier (RFC 5531 §9, rejected_reply). */
export function encodeDeniedReply(w: XdrWriter, xid: number, rej: RejectedReply): void {
  w.u32(xid)
  w.u32(msg_type.REPLY)
  w.u32(reply_stat.MSG_DENIED)
  w.u32(rej.stat)
  if (rej.stat === reject_stat.RPC_MISMATCH) {
    w.u32(rej.low)
    w.u32(rej.high)
  } else {
    w.u32(rej.auth_stat)
  }
}

/** Convenience for the one RPC_MISMATCH reply a v2-only server sends. */
export const RPC_MISMATCH_V2: RejectedReply = { stat: reject_stat.RPC_MISMATCH, low: RPC_VERSION, high: RPC_VERSION }

export type ReplyHeader =
  | { xid: number; kind: 'SUCCESS'; verf: OpaqueAuth }
  | { xid: number; kind: 'PROG_UNAVAIL' | 'PROC_UNAVAIL' | 'GARBAGE_ARGS' | 'SYSTEM_ERR'; verf: OpaqueAuth }
  | { xid: number; kind: 'PROG_MISMATCH'; verf: OpaqueAuth; low: number; high: number }
  | { xid: number; kind: 'RPC_MISMATCH'; low: number; high: number }
  | { xid: number; kind: 'AUTH_ERROR'; stat: number }

const ACCEPT_NAMES = ['SUCCESS', 'PROG_UNAVAIL', 'PROG_MISMATCH', 'PROC_UNAVAIL', 'GARBAGE_ARGS', 'SYSTEM_ERR'] as const

/**
 * Client side: decode reply_body. For SUCCESS the reader is left at the
 * results. Throws XdrDecodeError (XDR_BAD_ENUM) when the message is not a
 * REPLY or a status is out of range.
 */
export function decodeReplyHeader(r: XdrReader): ReplyHeader {
  const xid = r.u32()
  const mtype = r.u32()
  if (mtype !== msg_type.REPLY) throw new XdrDecodeError('XDR_BAD_ENUM', `msg_type ${mtype} is not REPLY`)
  const rstat = r.u32()
  if (rstat === reply_stat.MSG_ACCEPTED) {
    const verf = decodeOpaqueAuth(r)
    const stat = r.u32()
    const kind = ACCEPT_NAMES[stat]
    switch (kind) {
      case undefined:
        throw new XdrDecodeError('XDR_BAD_ENUM', `accept_stat ${stat}`)
      case 'PROG_MISMATCH': {
        const low = r.u32()
        const high = r.u32()
        return { xid, kind, verf, low, high }
      }
      case 'SUCCESS':
        return { xid, kind, verf }
      default:
        return { xid, kind, verf }
    }
  }
  if (rstat === reply_stat.MSG_DENIED) {
    const jstat = r.u32()
    if (jstat === reject_stat.RPC_MISMATCH) {
      const low = r.u32()
      const high = r.u32()
      return { xid, kind: 'RPC_MISMATCH', low, high }
    }
    if (jstat === reject_stat.AUTH_ERROR) return { xid, kind: 'AUTH_ERROR', stat: r.u32() }
    throw new XdrDecodeError('XDR_BAD_ENUM', `reject_stat ${jstat}`)
  }
  throw new XdrDecodeError('XDR_BAD_ENUM', `reply_stat ${rstat}`)
}
