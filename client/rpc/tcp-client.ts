/*
 * A minimal ONC RPC client over one TCP connection: record marking (RFC 5531
 * §11), many calls in flight matched by xid, a timeout per call, no retry;
 * a reply over the receive limit fails its call only (reply-records.ts).
 * Tests use it to speak raw RPC; the NFS client uses RpcTcpTransport, which
 * reconnects and re-sends.
 */
import type { Socket } from 'node:net'
import { frameRecord, totalLength } from '../../xdr/record.ts'
import { credentialOf } from './auth.ts'
import type { CallCredential } from './auth.ts'
import { XidSource, decodeReply, encodeCall } from './call.ts'
import type { ProcedureRef } from './call.ts'
import { RpcError } from './errors.ts'
import { PendingCalls } from './pending.ts'
import { ReplyRecords, dialReplies } from './reply-records.ts'
import type { RpcTransport, TransportCounters } from './transport.ts'

export interface RpcTcpClientOptions {
  /** Default per-call timeout (ms). */
  timeoutMs?: number
  /** Largest reply record accepted. */
  maxRecordSize?: number
  /** Default credential for calls that do not pass one. */
  cred?: CallCredential
}

export interface CallOptions {
  cred?: CallCredential
  timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 30_000
const DEFAULT_MAX_RECORD = 4 * 1024 * 1024

export class RpcTcpClient implements RpcTransport {
  readonly protocol = 'tcp'
  readonly socket: Socket
  private readonly pending = new PendingCalls()
  private readonly records: ReplyRecords
  private readonly xids = new XidSource()
  private readonly timeoutMs: number
  private readonly cred: CallCredential | undefined
  private closedError: RpcError | null = null
  private readonly closedPromise: Promise<void>

  private constructor(socket: Socket, records: ReplyRecords, opts: RpcTcpClientOptions) {
    this.socket = socket
    this.records = records
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.cred = opts.cred
    socket.setNoDelay(true)
    socket.on('error', (err: Error) => {
      this.fail(new RpcError('RPC_CONNECTION_CLOSED', `connection error: ${err.message}`, { cause: err }))
    })
    this.closedPromise = new Promise(resolve => {
      socket.once('close', () => {
        this.fail(new RpcError('RPC_CONNECTION_CLOSED', 'connection closed'))
        resolve()
      })
    })
  }

  static async connect(host: string, port: number, opts: RpcTcpClientOptions = {}): Promise<RpcTcpClient> {
    // Nothing arrives before the first call: the sink finds the client in place.
    let client: RpcTcpClient | null = null
    const records = new ReplyRecords(opts.maxRecordSize ?? DEFAULT_MAX_RECORD, {
      record: r => {
        client?.pending.resolve(r)
      },
      tooLarge: (xid, length) => {
        client?.pending.reject(xid, new RpcError('RPC_REPLY_TOO_LARGE', `reply to xid ${xid} of at least ${length} bytes exceeds the receive limit of ${records.limit}`, { xid }))
      },
    })
    let socket: Socket
    try {
      socket = await dialReplies(host, port, records)
    } catch (err) {
      throw new RpcError('RPC_CONNECTION_CLOSED', `connect to ${host}:${port} failed: ${(err as Error).message}`, { cause: err })
    }
    client = new RpcTcpClient(socket, records, opts)
    return client
  }

  /** Calls waiting for a reply. */
  get inFlight(): number {
    return this.pending.size
  }

  get maxReplySize(): number {
    return this.records.limit
  }

  set maxReplySize(bytes: number) {
    this.records.limit = bytes
  }

  counters(): TransportCounters {
    return { retransmits: 0, reconnects: 0, timeouts: 0 }
  }

  /** Resolves when the socket has closed (for whatever reason). */
  get closed(): Promise<void> {
    return this.closedPromise
  }

  async call<A, R>(prog: number, vers: number, proc: ProcedureRef<A, R>, args: A, opts: CallOptions = {}): Promise<R> {
    const xid = this.xids.take()
    const chunks = encodeCall(xid, prog, vers, proc, args, credentialOf(opts.cred ?? this.cred))
    const reply = await this.exchange(xid, chunks, opts.timeoutMs)
    return decodeReply(reply, proc.res)
  }

  /** Send a complete CALL record (no mark) and wait for the reply record with its xid. */
  callRaw(record: Buffer, opts: { timeoutMs?: number } = {}): Promise<Buffer> {
    if (record.length < 4) return Promise.reject(new RangeError('a record needs at least an xid'))
    return this.exchange(record.readUInt32BE(0), [record], opts.timeoutMs)
  }

  /** Write arbitrary bytes on the socket (hostile-input tests): no mark, no waiting. */
  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Close the connection; calls still waiting fail with RPC_CONNECTION_CLOSED. */
  async close(): Promise<void> {
    this.socket.destroy()
    await this.closedPromise
  }

  private async exchange(xid: number, chunks: Buffer[], timeoutMs = this.timeoutMs): Promise<Buffer> {
    if (this.closedError !== null) throw this.closedError
    const reply = this.pending.add(xid)
    const timer = setTimeout(() => {
      this.pending.reject(xid, new RpcError('RPC_TIMEOUT', `no reply to xid ${xid} within ${timeoutMs} ms`, { xid }))
    }, timeoutMs)
    this.socket.cork()
    this.socket.write(frameRecord(chunks, totalLength(chunks)))
    for (const c of chunks) this.socket.write(c)
    this.socket.uncork()
    try {
      return await reply
    } finally {
      clearTimeout(timer)
    }
  }

  private fail(err: RpcError): void {
    this.closedError ??= err
    this.pending.rejectAll(this.closedError)
  }
}
