/*
 * One TCP connection: socket bytes -> records (RFC 5531 §11) -> dispatch ->
 * replies. Records are dispatched as they arrive and answered as they
 * complete (pipelining), with a cap on requests in flight (per connection and
 * server-wide) and socket backpressure both ways: a peer that does not read
 * its replies stops being read once its unsent output passes a high-water
 * mark, so its memory is bounded by what was in flight then. Replies finished
 * in one event-loop turn leave in one corked batch: small ones joined into
 * one buffer, large chunks (READ data) written by reference.
 */
import type { Socket } from 'node:net'
import { RecordError, RecordReader, frameRecord, totalLength } from '../../xdr/record.ts'
import type { RecordBufferPool } from '../../xdr/record.ts'
import type { Logger } from '../logger.ts'
import type { InFlightBudget } from './budget.ts'
import { withDirectReads } from './direct-read.ts'
import { dispatch } from './dispatch.ts'
import type { CallOrigin, DispatchEnv } from './dispatch.ts'
import { peerOf } from './peer.ts'
import { takeSentHook } from './sent.ts'

export interface ConnectionLimits {
  maxRecordSize: number
  maxInFlightPerConnection: number
  /** Unsent reply bytes above which no new request of this connection starts. */
  maxBufferedOutput: number
  /** Nothing received or sent and nothing executing for this long: close (0: never). */
  idleTimeoutMs: number
  /** A record must be complete this long after its first byte arrived (0: no deadline). */
  recordTimeoutMs: number
}

/** Chunks shorter than this are copied into one joined buffer; longer ones go by reference. */
const JOIN_BELOW = 16 * 1024

/**
 * Where every connection's reads land unless a large fragment is being read
 * directly (see direct-read.ts). One for the process: a read callback runs
 * right after its read and copies the bytes out before any other read.
 */
const SCRATCH = Buffer.allocUnsafeSlow(64 * 1024)

export class RpcConnection {
  readonly socket: Socket
  private readonly env: DispatchEnv
  private readonly reader: RecordReader
  private readonly origin: CallOrigin
  private readonly budget: InFlightBudget
  private readonly maxInFlight: number
  private readonly lowWater: number
  private readonly maxOutput: number
  private readonly idleTimeoutMs: number
  private readonly recordTimeoutMs: number
  private readonly abort = new AbortController()
  /** Records received but not yet dispatched (a cap was reached, or output is backed up). */
  private readonly backlog: Buffer[] = []
  private inFlight = 0
  private out: Buffer[] = []
  private outBytes = 0
  private flushScheduled = false
  private waitingForDrain = false
  /** In the budget's line for a server-wide slot. */
  private waitingForBudget = false
  private paused = false
  private closed = false
  /** The peer half-closed: answer what is in flight, then end our side. */
  private ended = false
  /** Last time bytes moved either way or a request finished (ms, monotonic). */
  private lastActivity = performance.now()
  /** When the first byte of the record being received arrived, or null between records. */
  private recordStartedAt: number | null = null

  /**
   * `socket` may be an accepted socket still paused (pauseOnConnect): it is then read directly
   * (direct-read.ts). `pool`: record buffers for large records, shared by the server's
   * connections (the default 48 MiB covers a client with 32 1 MiB WRITEs in flight plus the
   * next burst, so a stream of WRITEs allocates nothing: fresh buffers are page-faulted in and
   * count as external memory, which drives V8's mark-compacts).
   */
  constructor(accepted: Socket, env: DispatchEnv, limits: ConnectionLimits, log: Logger, budget: InFlightBudget, pool: RecordBufferPool) {
    this.env = env
    this.budget = budget
    const reader = new RecordReader(limits.maxRecordSize, { pool })
    this.reader = reader
    const direct = withDirectReads(accepted, { buffer: () => reader.readTarget(SCRATCH), onRead: this.onRead })
    this.socket = direct ?? accepted
    const socket = this.socket
    this.maxInFlight = Math.max(1, limits.maxInFlightPerConnection)
    this.lowWater = Math.floor(this.maxInFlight / 2)
    // Below the socket's own high-water mark no 'drain' would come to wake us.
    this.maxOutput = Math.max(limits.maxBufferedOutput, socket.writableHighWaterMark)
    this.idleTimeoutMs = limits.idleTimeoutMs
    this.recordTimeoutMs = limits.recordTimeoutMs
    const peer = peerOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily)
    this.origin = { peer, transport: 'tcp', signal: this.abort.signal, log: log.child({ peer: `${peer.address}:${peer.port}`, transport: 'tcp' }) }
    socket.setNoDelay(true)
    if (direct === null) {
      socket.on('data', this.onData)
      socket.resume()
    }
    socket.on('drain', this.onDrain)
    socket.on('error', (err: Error) => {
      this.origin.log.debug({ err }, 'socket error')
    })
    socket.on('end', () => {
      this.ended = true
      this.maybeEnd()
    })
    socket.on('close', () => {
      this.closed = true
      this.backlog.length = 0
      this.out = []
      this.outBytes = 0
      this.budget.cancel(this.pump)
      this.abort.abort()
    })
  }

  /** Fires when the connection closes; handlers get it as CallContext.signal. */
  get signal(): AbortSignal {
    return this.abort.signal
  }

  get requestsInFlight(): number {
    return this.inFlight
  }

  /** Unsent reply bytes: queued for the next batch plus buffered in the socket. */
  get bufferedOutput(): number {
    return this.outBytes + this.socket.writableLength
  }

  destroy(): void {
    this.socket.destroy()
  }

  /**
   * Called periodically by the server: close a connection idle for too long,
   * or one whose current record is not complete by its deadline (a peer
   * trickling bytes). A paused connection is not charged for the time we
   * did not read it.
   */
  checkTimers(now: number): void {
    if (this.closed) return
    if (this.recordTimeoutMs > 0 && !this.paused && this.recordStartedAt !== null && now - this.recordStartedAt > this.recordTimeoutMs) {
      this.env.stats.recordTimeouts++
      this.origin.log.warn({ buffered: this.reader.buffered, deadlineMs: this.recordTimeoutMs }, 'closing connection: record not complete in time')
      this.socket.destroy()
      return
    }
    if (this.idleTimeoutMs > 0 && this.inFlight === 0 && !this.waitingForBudget && now - this.lastActivity > this.idleTimeoutMs) {
      this.env.stats.connectionsIdleClosed++
      this.origin.log.debug({ idleMs: Math.round(now - this.lastActivity) }, 'closing idle connection')
      this.socket.destroy()
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received(chunk, -1)
  }

  private readonly onRead = (n: number, buf: Buffer): void => {
    this.received(buf, n)
  }

  /** Bytes arrived: a 'data' chunk (`readLength` -1) or `readLength` bytes read into `buf` (direct reads). */
  private received(buf: Buffer, readLength: number): void {
    this.env.stats.bytesIn += readLength < 0 ? buf.length : readLength
    this.lastActivity = performance.now()
    let records: Buffer[]
    try {
      records = readLength < 0 ? this.reader.push(buf) : this.reader.pushRead(buf, readLength)
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      // A framing error leaves the stream unparseable: log once and drop the connection.
      this.env.stats.framingErrors++
      this.origin.log.warn({ err }, 'closing connection: bad record')
      this.socket.destroy()
      return
    }
    this.markRecordProgress()
    for (const record of records) this.backlog.push(record)
    this.pump()
    this.updateFlow()
  }

  /** The deadline runs from a record's first byte; a chunk that ends between records stops it. */
  private markRecordProgress(): void {
    if (this.reader.buffered === 0) this.recordStartedAt = null
    else this.recordStartedAt ??= this.lastActivity
  }

  /** Start backlog records while every cap allows; wait in the budget's line if it is the server-wide one. */
  private readonly pump = (): void => {
    this.waitingForBudget = false
    if (this.closed) return
    while (this.backlog.length > 0 && this.inFlight < this.maxInFlight && this.bufferedOutput < this.maxOutput) {
      if (!this.budget.tryTake()) {
        this.waitingForBudget = true
        this.budget.wait(this.pump)
        return
      }
      const next = this.backlog.shift()
      if (next !== undefined) this.start(next)
    }
    this.updateFlow()
  }

  private start(record: Buffer): void {
    this.inFlight++
    // Handlers copy what they keep (STYLE), and replies never point into the request,
    // so once dispatch has settled the record's buffer can be reused.
    dispatch(this.env, record, this.origin).then(
      reply => {
        this.reader.release(record)
        this.finished(reply)
      },
      (err: unknown) => {
        // dispatch turns handler failures into replies; reaching here is a bug in this layer.
        this.reader.release(record)
        this.origin.log.error({ err }, 'dispatch failed')
        this.finished(null)
      },
    )
  }

  private finished(reply: Buffer[] | null): void {
    this.inFlight--
    this.budget.give()
    if (this.closed) return
    this.lastActivity = performance.now()
    if (reply !== null) this.queueReply(reply)
    this.pump()
    this.maybeEnd()
  }

  private queueReply(chunks: Buffer[]): void {
    const length = totalLength(chunks)
    this.out.push(frameRecord(chunks, length), ...chunks)
    this.outBytes += length + 4
    // Nothing else running or queued here: no reply can join a batch, so waiting for the next loop
    // turn would only add latency (a client with one call at a time, like a directory listing).
    if (this.inFlight === 0 && this.backlog.length === 0 && !this.flushScheduled) {
      this.flush()
      return
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // setImmediate, not a microtask: every reply finished in this loop turn joins the batch.
      setImmediate(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    const out = this.out
    this.out = []
    this.outBytes = 0
    if (this.closed || out.length === 0) return
    const batch = joinSmall(out)
    let bytes = 0
    let ok = true
    this.socket.cork()
    for (const b of batch) {
      bytes += b.length
      // Lent READ data (sent.ts): handed back once the kernel has the bytes. Only large buffers
      // travel by reference, so small ones need no lookup.
      const hook = b.length >= JOIN_BELOW ? takeSentHook(b) : undefined
      ok = hook === undefined ? this.socket.write(b) : this.socket.write(b, hook)
    }
    this.socket.uncork()
    this.env.stats.bytesOut += bytes
    this.lastActivity = performance.now()
    if (!ok) this.waitingForDrain = true
    this.pump()
    this.maybeEnd()
  }

  private maybeEnd(): void {
    if (this.ended && !this.closed && this.inFlight === 0 && this.backlog.length === 0 && !this.flushScheduled) {
      this.socket.end()
    }
  }

  private readonly onDrain = (): void => {
    this.waitingForDrain = false
    this.lastActivity = performance.now()
    this.pump()
  }

  /** Stop reading while the cap is reached, a backlog waits, or the peer is not reading our replies. */
  private updateFlow(): void {
    if (this.closed) return
    const mustPause = this.waitingForDrain || this.backlog.length > 0 || this.inFlight >= this.maxInFlight
    if (mustPause && !this.paused) {
      this.paused = true
      this.socket.pause()
    } else if (this.paused && !this.waitingForDrain && this.backlog.length === 0 && this.inFlight <= this.lowWater) {
      this.paused = false
      // The time we did not read is not the peer's delay.
      if (this.recordStartedAt !== null) this.recordStartedAt = performance.now()
      this.socket.resume()
    }
  }
}

/** Join runs of small buffers into one; keep large ones as they are (no copy of file data). */
function joinSmall(bufs: Buffer[]): Buffer[] {
  const out: Buffer[] = []
  let run: Buffer[] = []
  let runBytes = 0
  const endRun = (): void => {
    const only = run[0]
    if (run.length === 1 && only !== undefined) out.push(only)
    else if (run.length > 1) out.push(Buffer.concat(run, runBytes))
    run = []
    runBytes = 0
  }
  for (const b of bufs) {
    if (b.length >= JOIN_BELOW) {
      endRun()
      out.push(b)
    } else {
      run.push(b)
      runBytes += b.length
    }
  }
  endRun()
  return out
}
