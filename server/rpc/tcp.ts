/*
 * One TCP connection: socket bytes -> records (RFC 5531 §11) -> dispatch ->
 * replies. Records are dispatched as they arrive and answered as they
 * complete (pipelining), with a cap on requests in flight and socket
 * backpressure both ways. Replies finished in one event-loop turn leave in one
 * corked batch: small ones joined into one buffer, large chunks (READ data)
 * written by reference.
 */
import type { Socket } from 'node:net'
import { RecordError, RecordReader, frameRecord, totalLength } from '../../xdr/record.ts'
import type { Logger } from '../logger.ts'
import { dispatch } from './dispatch.ts'
import type { CallOrigin, DispatchEnv } from './dispatch.ts'
import { peerOf } from './peer.ts'

export interface ConnectionLimits {
  maxRecordSize: number
  maxInFlightPerConnection: number
}

/** Chunks shorter than this are copied into one joined buffer; longer ones go by reference. */
const JOIN_BELOW = 16 * 1024

export class RpcConnection {
  readonly socket: Socket
  private readonly env: DispatchEnv
  private readonly reader: RecordReader
  private readonly origin: CallOrigin
  private readonly maxInFlight: number
  private readonly lowWater: number
  private readonly abort = new AbortController()
  /** Records received but not yet dispatched because the in-flight cap was reached. */
  private readonly backlog: Buffer[] = []
  private inFlight = 0
  private out: Buffer[] = []
  private flushScheduled = false
  private waitingForDrain = false
  private paused = false
  private closed = false
  /** The peer half-closed: answer what is in flight, then end our side. */
  private ended = false

  constructor(socket: Socket, env: DispatchEnv, limits: ConnectionLimits, log: Logger) {
    this.socket = socket
    this.env = env
    this.reader = new RecordReader(limits.maxRecordSize, { pool: true })
    this.maxInFlight = Math.max(1, limits.maxInFlightPerConnection)
    this.lowWater = Math.floor(this.maxInFlight / 2)
    const peer = peerOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily)
    this.origin = { peer, transport: 'tcp', signal: this.abort.signal, log: log.child({ peer: `${peer.address}:${peer.port}`, transport: 'tcp' }) }
    socket.setNoDelay(true)
    socket.on('data', this.onData)
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

  destroy(): void {
    this.socket.destroy()
  }

  private readonly onData = (chunk: Buffer): void => {
    this.env.stats.bytesIn += chunk.length
    let records: Buffer[]
    try {
      records = this.reader.push(chunk)
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      // A framing error leaves the stream unparseable: log once and drop the connection.
      this.env.stats.framingErrors++
      this.origin.log.warn({ err }, 'closing connection: bad record')
      this.socket.destroy()
      return
    }
    for (const record of records) {
      if (this.inFlight < this.maxInFlight) this.start(record)
      else this.backlog.push(record)
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
    if (this.closed) return
    if (reply !== null) this.queueReply(reply)
    while (this.inFlight < this.maxInFlight) {
      const next = this.backlog.shift()
      if (next === undefined) break
      this.start(next)
    }
    this.updateFlow()
    this.maybeEnd()
  }

  private queueReply(chunks: Buffer[]): void {
    this.out.push(frameRecord(chunks, totalLength(chunks)), ...chunks)
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
    if (this.closed || out.length === 0) return
    const batch = joinSmall(out)
    let bytes = 0
    let ok = true
    this.socket.cork()
    for (const b of batch) {
      bytes += b.length
      ok = this.socket.write(b)
    }
    this.socket.uncork()
    this.env.stats.bytesOut += bytes
    if (!ok) {
      this.waitingForDrain = true
      this.updateFlow()
    }
    this.maybeEnd()
  }

  private maybeEnd(): void {
    if (this.ended && !this.closed && this.inFlight === 0 && this.backlog.length === 0 && !this.flushScheduled) {
      this.socket.end()
    }
  }

  private readonly onDrain = (): void => {
    this.waitingForDrain = false
    this.updateFlow()
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
