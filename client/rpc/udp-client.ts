/*
 * A minimal ONC RPC client over UDP (RFC 5531 §5): one call per datagram,
 * replies matched by xid from the socket's 'message' events, and
 * retransmission of the same datagram (same xid, so the server's duplicate
 * request cache recognises it) with exponential backoff.
 *
 * The socket is made and closed through dgram-as-promised. It has no
 * connect(), and its send() needs a port and address, which Node refuses on
 * a connected socket: connecting and the per-call sends use the socket
 * itself. Replies come from 'message' events, never its recv(), which sees
 * only a datagram arriving while a recv() waits (calls overlap).
 */
import type { Socket } from 'node:dgram'
import { DgramAsPromised } from 'dgram-as-promised'
import type { SocketAsPromised } from 'dgram-as-promised'
import { isIPv6 } from 'node:net'
import { credentialOf } from './auth.ts'
import type { CallCredential } from './auth.ts'
import { XidSource, decodeReply, encodeCall } from './call.ts'
import type { ProcedureRef } from './call.ts'
import { RpcError } from './errors.ts'
import { PendingCalls } from './pending.ts'
import type { RpcTransport, TransportCounters } from './transport.ts'

export interface RpcUdpClientOptions {
  /** Wait before the first retransmission (ms); doubled after each one. */
  timeoutMs?: number
  /** Retransmissions before the call fails with RPC_TIMEOUT. */
  retries?: number
  /** Ceiling for the backoff (ms). */
  maxTimeoutMs?: number
  /** Never give up: retransmit until a reply comes (a Linux hard mount). */
  hard?: boolean
  cred?: CallCredential
  /** Bind to this local address before connecting (the client's clientAddress). */
  localAddress?: string
}

export interface UdpCallOptions {
  cred?: CallCredential
  timeoutMs?: number
  retries?: number
}

export class RpcUdpClient implements RpcTransport {
  readonly protocol = 'udp'
  readonly socket: Socket
  private readonly promised: SocketAsPromised
  private readonly pending = new PendingCalls()
  private readonly xids = new XidSource()
  private readonly timeoutMs: number
  private readonly retries: number
  private readonly maxTimeoutMs: number
  private readonly hard: boolean
  private readonly count: TransportCounters = { retransmits: 0, reconnects: 0, timeouts: 0 }
  private readonly cred: CallCredential | undefined
  private closed = false
  /** Datagrams sent, retransmissions included (for tests and stats). */
  sent = 0

  private constructor(promised: SocketAsPromised, opts: RpcUdpClientOptions) {
    const socket = promised.socket
    this.promised = promised
    this.socket = socket
    this.timeoutMs = opts.timeoutMs ?? 1000
    this.retries = opts.retries ?? 4
    this.maxTimeoutMs = opts.maxTimeoutMs ?? 30_000
    this.hard = opts.hard ?? false
    this.cred = opts.cred
    socket.on('message', (msg: Buffer) => {
      this.pending.resolve(msg)
    })
    socket.on('error', () => {
      // ICMP port unreachable and the like: the call's retransmission timer decides.
    })
  }

  static connect(host: string, port: number, opts: RpcUdpClientOptions = {}): Promise<RpcUdpClient> {
    const promised = DgramAsPromised.createSocket(isIPv6(host) ? 'udp6' : 'udp4')
    const socket = promised.socket
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        promised.destroy()
        reject(new RpcError('RPC_CONNECTION_CLOSED', `udp connect to ${host}:${port} failed: ${err.message}`, { cause: err }))
      }
      socket.once('error', onError)
      // A connected socket receives datagrams from the server's address and port only.
      const connect = (): void => {
        socket.connect(port, host, () => {
          socket.off('error', onError)
          resolve(new RpcUdpClient(promised, opts))
        })
      }
      if (opts.localAddress === undefined) connect()
      else socket.bind(0, opts.localAddress, connect)
    })
  }

  get inFlight(): number {
    return this.pending.size
  }

  counters(): TransportCounters {
    return { ...this.count }
  }

  async call<A, R>(prog: number, vers: number, proc: ProcedureRef<A, R>, args: A, opts: UdpCallOptions = {}): Promise<R> {
    const xid = this.xids.take()
    const chunks = encodeCall(xid, prog, vers, proc, args, credentialOf(opts.cred ?? this.cred))
    const reply = await this.exchange(xid, Buffer.concat(chunks), opts)
    return decodeReply(reply, proc.res)
  }

  /** Send a complete CALL record as a datagram (retransmitted like any call); resolves with the reply datagram. */
  callRaw(record: Buffer, opts: { timeoutMs?: number; retries?: number } = {}): Promise<Buffer> {
    if (record.length < 4) return Promise.reject(new RangeError('a record needs at least an xid'))
    return this.exchange(record.readUInt32BE(0), record, opts)
  }

  /** Send arbitrary bytes as one datagram (hostile-input tests). */
  sendRaw(bytes: Buffer): void {
    this.socket.send(bytes)
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.pending.rejectAll(new RpcError('RPC_CONNECTION_CLOSED', 'client closed'))
    return this.promised.close()
  }

  private async exchange(xid: number, datagram: Buffer, opts: { timeoutMs?: number; retries?: number }): Promise<Buffer> {
    if (this.closed) throw new RpcError('RPC_CONNECTION_CLOSED', 'client closed', { xid })
    const reply = this.pending.add(xid)
    let wait = opts.timeoutMs ?? this.timeoutMs
    let left = opts.retries ?? this.retries
    let timer: NodeJS.Timeout | undefined
    const transmit = (): void => {
      this.sent++
      this.socket.send(datagram)
      timer = setTimeout(() => {
        this.count.timeouts++
        if (left <= 0 && !this.hard) {
          this.pending.reject(xid, new RpcError('RPC_TIMEOUT', `no reply to xid ${xid}`, { xid }))
          return
        }
        left--
        this.count.retransmits++
        wait = Math.min(wait * 2, this.maxTimeoutMs)
        transmit()
      }, wait)
    }
    transmit()
    try {
      return await reply
    } finally {
      clearTimeout(timer)
    }
  }
}
