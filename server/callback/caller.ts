/*
 * The server's outbound ONC RPC caller, for the callbacks of the NLM
 * (GRANTED, the _RES messages) and the NSM (SM_NOTIFY, sm_status): one
 * call to a peer's program, over UDP or a TCP connection of its own. The
 * server may not import client/ (DESIGN.md §2), and a callback needs none
 * of the client's machinery (pipelining, reconnects, caches).
 */
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { datagramCall, datagramSend } from './datagram.ts'
import { PeerCallError } from './errors.ts'
import { StreamCaller, DEFAULT_TIMEOUT_MS } from './stream.ts'

export { PeerCallError, isTransient } from './errors.ts'
export type { PeerCallErrorCode, RpcErrorStatus } from './errors.ts'
export { DEFAULT_MAX_REPLY_BYTES } from './message.ts'

export interface PeerCall {
  host: string
  port: number
  transport: 'udp' | 'tcp'
  prog: number
  vers: number
  proc: number
}

export interface CallOptions {
  /** Wait for a reply after each send (UDP) or connection (TCP); default 2000 ms. */
  timeoutMs?: number
  /**
   * Tries after the first that timed out: UDP retransmits (same xid), TCP
   * reconnects (also after the peer closed before answering). Default 2 on
   * UDP, 0 on TCP. Refused connections and RPC-level answers are not retried.
   */
  retries?: number
  /** Default AUTH_NONE. */
  cred?: OpaqueAuth
  signal?: AbortSignal
  /** Larger replies fail with CALL_REPLY_TOO_LARGE (default 64 KiB). */
  maxReplyBytes?: number
  /** The source address to call from. */
  localAddress?: string
}

export interface SendOptions {
  cred?: OpaqueAuth
  timeoutMs?: number
  localAddress?: string
}

const DEFAULT_UDP_RETRIES = 2

/** Call target.proc with `argv` and decode the result with `res`; throws PeerCallError. */
export async function callPeer<A, R>(target: PeerCall, args: Codec<A>, argv: A, res: Codec<R>, opts: CallOptions = {}): Promise<R> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const local = opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }
  if (target.transport === 'udp') {
    return datagramCall({ host: target.host, port: target.port, ...local }, target, args, argv, res, {
      timeoutMs,
      retries: opts.retries ?? DEFAULT_UDP_RETRIES,
      ...(opts.cred === undefined ? {} : { cred: opts.cred }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.maxReplyBytes === undefined ? {} : { maxReplyBytes: opts.maxReplyBytes }),
    })
  }
  const retries = opts.retries ?? 0
  for (let attempt = 0; ; attempt++) {
    let c: StreamCaller | null = null
    try {
      c = await StreamCaller.open({ host: target.host, port: target.port, ...local }, {
        timeoutMs,
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        ...(opts.maxReplyBytes === undefined ? {} : { maxReplyBytes: opts.maxReplyBytes }),
      })
      return await c.call(target, args, argv, res, {
        timeoutMs,
        ...(opts.cred === undefined ? {} : { cred: opts.cred }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      })
    } catch (err) {
      const again = err instanceof PeerCallError && (err.code === 'CALL_TIMEOUT' || err.code === 'CALL_CLOSED')
      if (!again || attempt >= retries) throw err
    } finally {
      c?.close()
    }
  }
}

/**
 * Send a call whose reply is not awaited (the NLM _MSG/_RES messages): one
 * datagram on UDP; on TCP a connection that carries the call and is then
 * closed from our side (any reply is ignored). Resolves once the call has
 * left; throws PeerCallError when it could not be sent.
 */
export async function sendOneWay<A>(target: PeerCall, args: Codec<A>, argv: A, opts: SendOptions = {}): Promise<void> {
  const local = opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }
  if (target.transport === 'udp') {
    await datagramSend({ host: target.host, port: target.port, ...local }, target, args, argv, opts.cred)
    return
  }
  const c = await StreamCaller.open({ host: target.host, port: target.port, ...local }, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS })
  try {
    await c.send(target, args, argv, opts.cred)
  } finally {
    c.end()
  }
}
