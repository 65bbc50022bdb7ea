/*
 * ONC RPC over TCP that survives a broken connection (RFC 5531 §11 record
 * marking). Every call is kept, encoded, until its reply arrives; when the
 * connection breaks the client reconnects with a capped backoff and re-sends
 * each outstanding call with its original xid, so the server's duplicate
 * request cache replays the replies of non-idempotent calls it already ran
 * (RFC 1813 §4.5 hints at this; the Linux client does the same). A reply
 * larger than the receive limit fails its own call and is skipped
 * (reply-records.ts); a hard mount logs when its server stops and starts
 * answering (ServerStatus).
 */
import type { Socket } from 'node:net'
import { frameRecord, framedRecord, totalLength } from '../../xdr/record.ts'
import { credentialOf } from './auth.ts'
import type { CallCredential } from './auth.ts'
import { XidSource, decodeReply, encodeCall } from './call.ts'
import type { ProcedureRef } from './call.ts'
import { RpcError } from './errors.ts'
import type { BufferPool } from './buffer-pool.ts'
import { ReplyRecords, dialReplies } from './reply-records.ts'
import { DEFAULT_TCP_POLICY, STDERR_LOG, ServerStatus } from './transport.ts'
import type { RetryPolicy, RpcLog, RpcTransport, TransportCallOptions, TransportCounters } from './transport.ts'

export interface RpcTcpTransportOptions {
  policy?: Partial<RetryPolicy>
  cred?: CallCredential
  /** Largest reply record accepted (default DEFAULT_MAX_REPLY); see RpcTransport.maxReplySize. */
  maxRecordSize?: number
  /** Calls sent at once; more wait in a queue (the undici Client model). */
  maxInFlight?: number
  /** Where "server not responding" and "server OK" go (default stderr). */
  log?: RpcLog
  /** Buffers for large replies read straight from the socket (see BufferPool); none: fresh ones. */
  pool?: BufferPool
  /** The local address every connection (and reconnection) is made from. */
  localAddress?: string
}

/** Before FSINFO: room for a 1 MiB READ (the largest any mount asks) and its headers. */
export const DEFAULT_MAX_REPLY = 1024 * 1024 + 64 * 1024

interface Outstanding {
  readonly xid: number
  readonly record: Buffer[]
  readonly timeoutMs: number
  readonly resolve: (record: Buffer) => void
  readonly reject: (err: Error) => void
  tries: number
  /** When its wait for a reply runs out (performance.now() ms): the sweep re-sends or fails it then. */
  deadline: number
  /** Written to some connection at least once (a re-send after reconnect is then a retransmission). */
  sent: boolean
  /** Writes of the record the socket has not flushed yet, and what waits for them (see settle). */
  unflushed: number
  flushed: (() => void) | null
}

const FIRST_RECONNECT_DELAY_MS = 100
/** Records up to this size are sent as one copied buffer (every call but WRITEs of data). */
const SMALL_RECORD = 4096

export class RpcTcpTransport implements RpcTransport {
  readonly protocol = 'tcp'
  readonly host: string
  readonly port: number
  private readonly policy: RetryPolicy
  private readonly cred: CallCredential | undefined
  private replyLimit: number
  private readonly maxInFlight: number
  private readonly status: ServerStatus
  private records: ReplyRecords | null = null
  private readonly pool: BufferPool | null
  private readonly localAddress: string | undefined
  private readonly xids = new XidSource()
  private readonly outstanding = new Map<number, Outstanding>()
  /**
   * One timer for every outstanding call, due at the earliest deadline, not
   * one per call: a timer set and cleared for each of a small file's three
   * calls showed in the mount daemon's profile (session 38). Referenced
   * only while calls wait, so they keep a process alive as their own timers
   * did (between reconnection attempts nothing else does), and an idle
   * client does not.
   */
  private sweep: NodeJS.Timeout | null = null
  private sweepAt = Infinity
  private sweeping = false
  private readonly queue: Outstanding[] = []
  private socket: Socket | null = null
  private reconnecting = false
  private closed = false
  private readonly count: TransportCounters = { retransmits: 0, reconnects: 0, timeouts: 0 }

  private constructor(host: string, port: number, opts: RpcTcpTransportOptions) {
    this.host = host
    this.port = port
    this.policy = { ...DEFAULT_TCP_POLICY, ...opts.policy }
    this.cred = opts.cred
    this.replyLimit = opts.maxRecordSize ?? DEFAULT_MAX_REPLY
    this.maxInFlight = opts.maxInFlight ?? 128
    this.status = new ServerStatus(host, opts.log ?? STDERR_LOG)
    this.pool = opts.pool ?? null
    this.localAddress = opts.localAddress
  }

  /** The first connection must succeed (a mount fails fast on a wrong host or port); later breaks are repaired. */
  static async connect(host: string, port: number, opts: RpcTcpTransportOptions = {}): Promise<RpcTcpTransport> {
    const t = new RpcTcpTransport(host, port, opts)
    t.attach(await t.dial())
    return t
  }

  get inFlight(): number {
    return this.outstanding.size
  }

  get maxReplySize(): number {
    return this.replyLimit
  }

  set maxReplySize(bytes: number) {
    this.replyLimit = bytes
    if (this.records !== null) this.records.limit = bytes
  }

  /** False while a hard mount's server is not answering (after "not responding" was logged). */
  get responding(): boolean {
    return this.status.responding
  }

  counters(): TransportCounters {
    return { ...this.count }
  }

  async call<A, R>(prog: number, vers: number, proc: ProcedureRef<A, R>, args: A, opts: TransportCallOptions = {}): Promise<R> {
    if (this.closed) throw new RpcError('RPC_CONNECTION_CLOSED', 'transport closed')
    const xid = this.xids.take()
    const record = encodeCall(xid, prog, vers, proc, args, credentialOf(opts.cred ?? this.cred))
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const o: Outstanding = {
        xid,
        record,
        timeoutMs: opts.timeoutMs ?? this.policy.timeoutMs,
        resolve,
        reject,
        tries: 0,
        deadline: Infinity,
        sent: false,
        unflushed: 0,
        flushed: null,
      }
      if (this.outstanding.size >= this.maxInFlight) this.queue.push(o)
      else this.start(o)
    })
    return decodeReply(reply, proc.res)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const err = new RpcError('RPC_CONNECTION_CLOSED', 'transport closed')
    for (const o of this.queue.splice(0)) o.reject(err)
    for (const o of [...this.outstanding.values()]) this.finish(o)?.reject(err)
    if (this.sweep !== null) clearTimeout(this.sweep)
    this.sweep = null
    const s = this.socket
    this.socket = null
    if (s !== null && !s.destroyed) {
      await new Promise<void>(resolve => {
        s.once('close', () => { resolve() })
        s.destroy()
      })
    }
  }

  private start(o: Outstanding): void {
    this.outstanding.set(o.xid, o)
    this.arm(o)
    this.send(o)
  }

  /** RFC-less but Linux-like: TCP retries wait linearly longer (timeo, 2×timeo, …) up to maxTimeoutMs. */
  private arm(o: Outstanding): void {
    const wait = Math.min(o.timeoutMs * (o.tries + 1), this.policy.maxTimeoutMs)
    o.deadline = performance.now() + wait
    if (this.sweeping) return
    if (o.deadline < this.sweepAt) this.schedule(o.deadline)
    else this.sweep?.ref()
  }

  /** The sweep, due at `at`. */
  private schedule(at: number): void {
    if (this.sweep !== null) clearTimeout(this.sweep)
    this.sweepAt = at
    this.sweep = setTimeout(() => {
      this.onSweep()
    }, Math.max(0, at - performance.now()))
  }

  /** Every call whose deadline has come is re-sent or failed; the sweep is set again for the earliest one left. */
  private onSweep(): void {
    this.sweep = null
    this.sweepAt = Infinity
    const now = performance.now()
    this.sweeping = true
    try {
      for (const o of [...this.outstanding.values()]) if (o.deadline <= now && this.outstanding.get(o.xid) === o) this.expire(o)
    } finally {
      this.sweeping = false
    }
    let next = Infinity
    for (const o of this.outstanding.values()) next = Math.min(next, o.deadline)
    if (next !== Infinity && !this.closed) this.schedule(next)
  }

  private expire(o: Outstanding): void {
    this.count.timeouts++
    o.tries++
    if (o.tries > this.policy.retrans) {
      if (!this.policy.hard) {
        this.settle(this.finish(o), f => {
          f.reject(new RpcError('RPC_TIMEOUT', `no reply to xid ${o.xid} after ${o.tries} tries`, { xid: o.xid }))
        })
        return
      }
      this.status.majorTimeout()
    }
    // Same xid: if the server did run it, its DRC answers with the original reply.
    this.count.retransmits++
    this.send(o)
    this.arm(o)
  }

  private finish(o: Outstanding): Outstanding | undefined {
    if (this.outstanding.get(o.xid) !== o) return undefined
    this.outstanding.delete(o.xid)
    const next = this.queue.shift()
    if (next !== undefined && !this.closed) this.start(next)
    // Nothing waits: the sweep no longer keeps the process alive (it finds nothing due when it fires).
    if (this.outstanding.size === 0) this.sweep?.unref()
    return o
  }

  /**
   * Settle a finished call once the socket holds none of its record. A
   * re-sent call may still sit in the socket's queue when the first reply
   * comes; the caller may reuse the buffers the call was made of (a WRITE's
   * data goes back to its pool) only when the socket is done with them.
   * Destroying a socket calls back its queued writes, so this never waits
   * on a dead connection.
   */
  private settle(o: Outstanding | undefined, done: (o: Outstanding) => void): void {
    if (o === undefined) return
    if (o.unflushed === 0) done(o)
    else o.flushed = () => { done(o) }
  }

  private send(o: Outstanding): void {
    const s = this.socket
    if (s === null || s.destroyed) {
      this.reconnect()
      return
    }
    const written = (): void => {
      o.unflushed--
      if (o.unflushed > 0 || o.flushed === null) return
      const then = o.flushed
      o.flushed = null
      then()
    }
    const length = totalLength(o.record)
    if (length <= SMALL_RECORD) {
      // One buffer, one write: for a small call the copy costs less than a corked writev's
      // bookkeeping (a write request per chunk, then the stream's clearBuffer); large data goes by reference.
      o.unflushed += 1
      s.write(framedRecord(o.record, length), written)
    } else {
      o.unflushed += 1 + o.record.length
      s.cork()
      s.write(frameRecord(o.record, length), written)
      for (const c of o.record) s.write(c, written)
      s.uncork()
    }
    o.sent = true
  }

  /** A new connection, its replies read through a new ReplyRecords. */
  private async dial(): Promise<{ socket: Socket; records: ReplyRecords }> {
    const records = new ReplyRecords(this.replyLimit, {
      record: r => {
        this.status.replied()
        if (r.length < 4) return
        const o = this.outstanding.get(r.readUInt32BE(0))
        if (o !== undefined) {
          this.settle(this.finish(o), f => {
            f.resolve(r)
          })
        }
      },
      tooLarge: (xid, length) => {
        this.status.replied()
        const o = this.outstanding.get(xid)
        if (o === undefined) return
        // Not re-sent: the server would answer the same again.
        const err = new RpcError('RPC_REPLY_TOO_LARGE', `reply to xid ${xid} of at least ${length} bytes exceeds the receive limit of ${this.replyLimit}`, { xid })
        this.settle(this.finish(o), f => {
          f.reject(err)
        })
      },
    }, this.pool)
    try {
      return { socket: await dialReplies(this.host, this.port, records, this.localAddress), records }
    } catch (err) {
      throw new RpcError('RPC_CONNECTION_CLOSED', `connect to ${this.host}:${this.port} failed: ${(err as Error).message}`, { cause: err })
    }
  }

  private attach({ socket, records }: { socket: Socket; records: ReplyRecords }): void {
    this.records = records
    this.socket = socket
    socket.setNoDelay(true)
    socket.setKeepAlive(true)
    socket.on('error', () => {
      // 'close' follows; the reconnect logic lives there.
    })
    socket.once('close', () => {
      if (this.socket === socket) {
        this.socket = null
        this.records = null
      }
      if (!this.closed && this.outstanding.size > 0) this.reconnect()
    })
  }

  /** Reconnect while calls wait (capped exponential backoff), then re-send every one of them. */
  private reconnect(): void {
    if (this.reconnecting || this.closed) return
    this.reconnecting = true
    let delay = 0
    const attempt = (): void => {
      if (this.closed || this.outstanding.size === 0) {
        this.reconnecting = false
        return
      }
      this.dial().then(conn => {
        this.reconnecting = false
        if (this.closed) {
          conn.socket.destroy()
          return
        }
        this.count.reconnects++
        this.attach(conn)
        for (const o of this.outstanding.values()) {
          if (o.sent) this.count.retransmits++
          this.send(o)
        }
      }, () => {
        delay = Math.min(Math.max(delay * 2, FIRST_RECONNECT_DELAY_MS), this.policy.maxReconnectDelayMs)
        setTimeout(attempt, delay).unref()
      })
    }
    attempt()
  }
}
