/*
 * RFC 5531 §9: the CALL side of rpc_msg (call_body), hand-written because the
 * dispatcher must react to each field before reading the next (a wrong rpcvers
 * or a non-CALL message is answered or ignored without decoding the rest).
 */
import { XdrDecodeError } from '../runtime/errors.ts'
import type { XdrReader } from '../runtime/reader.ts'
import type { XdrWriter } from '../runtime/writer.ts'
import { decodeOpaqueAuth, encodeOpaqueAuth } from './auth.ts'
import type { OpaqueAuth } from './auth.ts'
import { RPC_VERSION, msg_type } from './constants.ts'

export interface CallHeader {
  xid: number
  rpcvers: number
  prog: number
  vers: number
  proc: number
  cred: OpaqueAuth
  verf: OpaqueAuth
}

export type RpcMessageErrorCode =
  /** msg_type is not CALL (e.g. a stray REPLY): a server ignores it. */
  | 'RPC_NOT_CALL'
  /** rpcvers is not 2: answer MSG_DENIED / RPC_MISMATCH (2, 2). */
  | 'RPC_VERSION_MISMATCH'
  /** The credential does not decode (truncated, body over 400 bytes): AUTH_BADCRED. */
  | 'RPC_BAD_CRED'
  /** The verifier does not decode: AUTH_BADVERF. */
  | 'RPC_BAD_VERF'

/**
 * A call header that can be answered (or must be ignored) for a reason other
 * than plain truncation; carries what was read so far so the dispatcher can reply.
 */
export class RpcMessageError extends Error {
  readonly code: RpcMessageErrorCode
  readonly xid: number
  /** msg_type for RPC_NOT_CALL, rpcvers for RPC_VERSION_MISMATCH, otherwise 0. */
  readonly value: number
  constructor(code: RpcMessageErrorCode, xid: number, value: number, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'RpcMessageError'
    this.code = code
    this.xid = xid
    this.value = value
  }
}

/**
 * Decode call_body and leave the reader at the procedure arguments.
 * Throws XdrDecodeError when the fixed header words are truncated, and
 * RpcMessageError for the cases the caller must tell apart (see its codes).
 */
export function decodeCallHeader(r: XdrReader): CallHeader {
  const xid = r.u32()
  const mtype = r.u32()
  if (mtype !== msg_type.CALL) {
    throw new RpcMessageError('RPC_NOT_CALL', xid, mtype, `msg_type ${mtype} is not CALL`)
  }
  const rpcvers = r.u32()
  if (rpcvers !== RPC_VERSION) {
    throw new RpcMessageError('RPC_VERSION_MISMATCH', xid, rpcvers, `rpcvers ${rpcvers}`)
  }
  const prog = r.u32()
  const vers = r.u32()
  const proc = r.u32()
  let cred: OpaqueAuth
  try {
    cred = decodeOpaqueAuth(r)
  } catch (err) {
    if (err instanceof XdrDecodeError) throw new RpcMessageError('RPC_BAD_CRED', xid, 0, `credential: ${err.message}`, err)
    throw err
  }
  let verf: OpaqueAuth
  try {
    verf = decodeOpaqueAuth(r)
  } catch (err) {
    if (err instanceof XdrDecodeError) throw new RpcMessageError('RPC_BAD_VERF', xid, 0, `verifier: ${err.message}`, err)
    throw err
  }
  return { xid, rpcvers, prog, vers, proc, cred, verf }
}

export interface CallHeaderInit {
  xid: number
  prog: number
  vers: number
  proc: number
  cred: OpaqueAuth
  verf: OpaqueAuth
}

/** Client side: the call header; the caller appends the encoded arguments. */
export function encodeCallHeader(w: XdrWriter, h: CallHeaderInit): void {
  w.u32(h.xid)
  w.u32(msg_type.CALL)
  w.u32(RPC_VERSION)
  w.u32(h.prog)
  w.u32(h.vers)
  w.u32(h.proc)
  encodeOpaqueAuth(w, h.cred)
  encodeOpaqueAuth(w, h.verf)
}
