/*
 * Outbound calls over UDP (RFC 5531 §5): one socket per call, connected to
 * the peer so that the kernel drops datagrams from anyone else and an ICMP
 * port unreachable fails the call at once (ECONNREFUSED) instead of
 * waiting out the timeout. Retransmissions reuse the xid, so a late reply
 * to an earlier copy still answers the call.
 */
import { DgramAsPromised } from 'dgram-as-promised'
import type { SocketAsPromised } from 'dgram-as-promised'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { PeerCallError } from './errors.ts'
import { DEFAULT_MAX_REPLY_BYTES, decodeReply, encodeCall, nextXid, xidOf } from './message.ts'
import { hostResolver } from './resolve.ts'
import type { ProcRef } from './message.ts'

export interface DatagramTarget {
  host: string
  port: number
  /** Source address to send from (tests give each simulated host its own loopback address). */
  localAddress?: string
}

export interface DatagramCallOptions {
  /** Wait after each send (default 2000 ms). */
  timeoutMs: number
  /** Retransmissions after the first send. */
  retries: number
  cred?: OpaqueAuth
  signal?: AbortSignal
  maxReplyBytes?: number
}

/** A UDP socket bound (to localAddress when given) and connected to the target (a name resolved by resolve.ts). */
async function openConnected(t: DatagramTarget, signal?: AbortSignal): Promise<SocketAsPromised> {
  const { address, family } = await hostResolver.resolve(t.host, signal)
  const s = DgramAsPromised.createSocket({ type: family === 6 ? 'udp6' : 'udp4' })
  try {
    await s.bind({ port: 0, ...(t.localAddress === undefined ? {} : { address: t.localAddress }) })
    await new Promise<void>((resolve, reject) => {
      s.socket.once('error', reject)
      s.socket.connect(t.port, address, () => {
        s.socket.removeListener('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await shut(s)
    throw new PeerCallError('CALL_UNREACHABLE', `cannot send to ${t.host}:${String(t.port)}: ${(err as Error).message}`, { cause: err })
  }
  return s
}

/** Close the socket (a late reply is dropped by the kernel then). */
async function shut(s: SocketAsPromised): Promise<void> {
  await s.close().catch(() => undefined)
  s.destroy()
}

export async function datagramCall<A, R>(t: DatagramTarget, p: ProcRef, args: Codec<A>, argv: A, res: Codec<R>, opts: DatagramCallOptions): Promise<R> {
  const where = `${t.host}:${String(t.port)}`
  if (opts.signal?.aborted === true) throw new PeerCallError('CALL_ABORTED', `call to ${where} aborted`)
  const s = await openConnected(t, opts.signal)
  const xid = nextXid()
  const message = encodeCall(xid, p, args, argv, opts.cred)
  const maxReply = opts.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES
  const signal = opts.signal
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      let sends = 0
      const transmit = (): void => {
        if (sends > opts.retries) {
          reject(new PeerCallError('CALL_TIMEOUT', `${where} did not answer within ${String(opts.timeoutMs)} ms (${String(sends)} sends)`))
          return
        }
        sends++
        // Failed sends surface as the socket's 'error' event too; the timer covers the rest.
        s.socket.send(message, () => undefined)
        timer = setTimeout(transmit, opts.timeoutMs)
      }
      s.socket.on('message', (msg: Buffer) => {
        if (xidOf(msg) !== xid) return
        if (msg.length > maxReply) reject(new PeerCallError('CALL_REPLY_TOO_LARGE', `${where} answered ${String(msg.length)} bytes, more than ${String(maxReply)}`))
        else resolve(msg)
      })
      s.socket.on('error', (err: Error) => {
        reject(new PeerCallError('CALL_UNREACHABLE', `${where}: ${err.message}`, { cause: err }))
      })
      onAbort = () => {
        reject(new PeerCallError('CALL_ABORTED', `call to ${where} aborted`))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      transmit()
    })
    return decodeReply(reply, res, `${where} (program ${String(p.prog)} version ${String(p.vers)} procedure ${String(p.proc)})`)
  } finally {
    clearTimeout(timer)
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
    await shut(s)
  }
}

/** One datagram, no reply awaited (a late reply finds the socket closed and is dropped). */
export async function datagramSend<A>(t: DatagramTarget, p: ProcRef, args: Codec<A>, argv: A, cred?: OpaqueAuth): Promise<void> {
  const s = await openConnected(t)
  try {
    await new Promise<void>((resolve, reject) => {
      s.socket.send(encodeCall(nextXid(), p, args, argv, cred), (err) => {
        if (err === null) resolve()
        else reject(new PeerCallError('CALL_UNREACHABLE', `sending to ${t.host}:${String(t.port)} failed: ${err.message}`, { cause: err }))
      })
    })
  } finally {
    await shut(s)
  }
}
