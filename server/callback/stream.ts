/*
 * Outbound calls over one stream connection (TCP, or a local socket such as
 * rpcbind's): record marking (RFC 5531 §11), replies matched to calls by
 * xid, so several calls may be outstanding. A record mark announcing more
 * than maxReplyBytes fails every call and closes the connection before
 * anything is allocated for the record.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { RecordError, RecordReader, frameRecord, totalLength } from '../../xdr/record.ts'
import { PeerCallError } from './errors.ts'
import { DEFAULT_MAX_REPLY_BYTES, decodeReply, encodeCall, nextXid, xidOf } from './message.ts'
import type { ProcRef } from './message.ts'
import { hostResolver } from './resolve.ts'

export type StreamEndpoint = { path: string } | { host: string; port: number; localAddress?: string }

export interface StreamOptions {
  /** For the connection and then for each call (default 2000 ms). */
  timeoutMs?: number
  maxReplyBytes?: number
  signal?: AbortSignal
}

export interface StreamCallOptions {
  timeoutMs?: number
  cred?: OpaqueAuth
  signal?: AbortSignal
}

export const DEFAULT_TIMEOUT_MS = 2000

export function describeEndpoint(e: StreamEndpoint): string {
  return 'path' in e ? e.path : `${e.host}:${String(e.port)}`
}

interface Pending {
  settle(reply: Buffer | PeerCallError): void
}

export class StreamCaller {
  readonly endpoint: StreamEndpoint
  private readonly socket: Socket
  private readonly reader: RecordReader
  readonly timeoutMs: number
  private readonly pending = new Map<number, Pending>()
  /** Set once the connection is unusable: every later call fails with it. */
  private failure: PeerCallError | null = null

  private constructor(socket: Socket, endpoint: StreamEndpoint, timeoutMs: number, maxReplyBytes: number) {
    this.socket = socket
    this.endpoint = endpoint
    this.timeoutMs = timeoutMs
    this.reader = new RecordReader(maxReplyBytes)
    socket.on('data', (chunk: Buffer) => {
      let records: Buffer[]
      try {
        records = this.reader.push(chunk)
      } catch (err) {
        const tooLarge = err instanceof RecordError
        this.fail(new PeerCallError(tooLarge ? 'CALL_REPLY_TOO_LARGE' : 'CALL_BAD_REPLY', `${describeEndpoint(endpoint)}: ${(err as Error).message}`, { cause: err }))
        socket.destroy()
        return
      }
      // A reply to no call of ours (a late one after its timeout) is dropped.
      for (const r of records) this.pending.get(xidOf(r))?.settle(r)
    })
    socket.on('error', (err) => {
      this.fail(new PeerCallError('CALL_CLOSED', `connection to ${describeEndpoint(endpoint)} failed: ${err.message}`, { cause: err }))
    })
    socket.on('close', () => {
      this.fail(new PeerCallError('CALL_CLOSED', `${describeEndpoint(endpoint)} closed the connection`))
    })
  }

  static async open(at: StreamEndpoint, opts: StreamOptions = {}): Promise<StreamCaller> {
    // A name is resolved here, a few at a time (resolve.ts), not by connect's own lookup.
    const to = 'host' in at ? { ...at, host: (await hostResolver.resolve(at.host, opts.signal)).address } : at
    return StreamCaller.connect(at, to, opts)
  }

  private static connect(at: StreamEndpoint, to: StreamEndpoint, opts: StreamOptions): Promise<StreamCaller> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const where = describeEndpoint(at)
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted === true) {
        reject(new PeerCallError('CALL_ABORTED', `call to ${where} aborted`))
        return
      }
      const socket = connect(to)
      const done = (err: PeerCallError | null): void => {
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        socket.removeListener('error', onError)
        if (err === null) {
          resolve(new StreamCaller(socket, at, timeoutMs, opts.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES))
        } else {
          socket.destroy()
          reject(err)
        }
      }
      const onError = (err: Error): void => {
        done(new PeerCallError('CALL_UNREACHABLE', `cannot connect to ${where}: ${err.message}`, { cause: err }))
      }
      const onAbort = (): void => {
        done(new PeerCallError('CALL_ABORTED', `call to ${where} aborted`))
      }
      const timer = setTimeout(() => {
        done(new PeerCallError('CALL_TIMEOUT', `no connection to ${where} within ${String(timeoutMs)} ms`))
      }, timeoutMs)
      socket.once('error', onError)
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      socket.once('connect', () => {
        socket.setNoDelay(true)
        done(null)
      })
    })
  }

  /** One call; the reply is decoded with `res`. Throws PeerCallError. */
  async call<A, R>(p: ProcRef, args: Codec<A>, argv: A, res: Codec<R>, opts: StreamCallOptions = {}): Promise<R> {
    const xid = nextXid()
    const reply = await this.exchange(xid, encodeCall(xid, p, args, argv, opts.cred), opts)
    return decodeReply(reply, res, `${describeEndpoint(this.endpoint)} (program ${String(p.prog)} version ${String(p.vers)} procedure ${String(p.proc)})`)
  }

  /** Send a call without waiting for any reply; resolves once the bytes are handed to the kernel. */
  send<A>(p: ProcRef, args: Codec<A>, argv: A, cred?: OpaqueAuth): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    const chunks = encodeCall(nextXid(), p, args, argv, cred)
    return new Promise((resolve, reject) => {
      this.socket.write(Buffer.concat([frameRecord(chunks, totalLength(chunks)), ...chunks]), (err) => {
        if (err === null || err === undefined) resolve()
        else reject(new PeerCallError('CALL_CLOSED', `sending to ${describeEndpoint(this.endpoint)} failed: ${err.message}`, { cause: err }))
      })
    })
  }

  close(): void {
    this.socket.destroy()
  }

  /** Close our side once what was written has gone; the socket is destroyed when the peer closes too, or after the timeout. */
  end(): void {
    this.socket.end()
    setTimeout(() => {
      this.socket.destroy()
    }, this.timeoutMs).unref()
  }

  private exchange(xid: number, chunks: Buffer[], opts: StreamCallOptions): Promise<Buffer> {
    if (this.failure !== null) return Promise.reject(this.failure)
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs
    const signal = opts.signal
    return new Promise<Buffer>((resolve, reject) => {
      const settle = (r: Buffer | PeerCallError): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.pending.delete(xid)
        if (r instanceof PeerCallError) reject(r)
        else resolve(r)
      }
      const onAbort = (): void => {
        settle(new PeerCallError('CALL_ABORTED', `call to ${describeEndpoint(this.endpoint)} aborted`))
      }
      const timer = setTimeout(() => {
        settle(new PeerCallError('CALL_TIMEOUT', `${describeEndpoint(this.endpoint)} did not answer within ${String(timeoutMs)} ms`))
      }, timeoutMs)
      if (signal?.aborted === true) {
        onAbort()
        return
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(xid, { settle })
      this.socket.write(Buffer.concat([frameRecord(chunks, totalLength(chunks)), ...chunks]))
    })
  }

  private fail(err: PeerCallError): void {
    this.failure ??= err
    for (const p of [...this.pending.values()]) p.settle(this.failure)
  }
}
