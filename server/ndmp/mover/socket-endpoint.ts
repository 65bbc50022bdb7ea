/*
 * A DataEndpoint over a connected TCP socket (NDMP_ADDR_TCP). Reads are pulled: the socket is
 * paused while more than READ_HIGH_WATER bytes wait unread, so a slow tape never lets a fast
 * data service fill our memory (nor the reverse in a restore). Writes resolve when the socket
 * takes the chunk without going over its own buffer, else on 'drain'.
 */
import type { Socket } from 'node:net'
import { DataConnectionError } from './connection-error.ts'
import type { DataEndpoint } from './connection.ts'

export const READ_HIGH_WATER = 1024 * 1024

interface PendingRead {
  max: number
  resolve: (b: Buffer | null) => void
  reject: (e: DataConnectionError) => void
}

export class SocketEndpoint implements DataEndpoint {
  readonly kind = 'tcp' as const
  readonly peer: string
  bytesWritten = 0n
  bytesRead = 0n
  readonly closed: Promise<{ error: DataConnectionError | undefined }>
  private readonly socket: Socket
  private readonly queue: Buffer[] = []
  private queued = 0
  private eof = false
  private ended: Promise<void> | null = null
  /** Set once this side cannot go on: what every later call rejects with. */
  private failure: DataConnectionError | null = null
  private reader: PendingRead | null = null
  private readonly drainWaiters = new Set<{ resolve: () => void; reject: (e: DataConnectionError) => void }>()

  constructor(socket: Socket) {
    this.socket = socket
    this.peer = `${(socket.remoteAddress ?? '?').replace(/^::ffff:/, '')}:${String(socket.remotePort ?? 0)}`
    socket.setNoDelay(true)
    let transportError: DataConnectionError | undefined
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.fail(new DataConnectionError('DATA_CONN_CLOSED', `the data connection to ${this.peer} is closed`))
        resolve({ error: transportError })
      })
    })
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk)
      this.queued += chunk.length
      if (this.queued >= READ_HIGH_WATER) socket.pause()
      this.serveReader()
    })
    socket.on('end', () => {
      this.eof = true
      this.serveReader()
    })
    socket.on('error', (err) => {
      transportError = new DataConnectionError('DATA_CONN_RESET', `data connection to ${this.peer}: ${err.message}`, { cause: err })
      this.fail(transportError)
    })
    socket.on('drain', () => {
      for (const w of this.drainWaiters) w.resolve()
      this.drainWaiters.clear()
    })
    socket.resume()
  }

  write(chunk: Buffer): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.ended !== null) return Promise.reject(new DataConnectionError('DATA_CONN_ENDED', 'write after end'))
    if (chunk.length === 0) return Promise.resolve()
    this.bytesWritten += BigInt(chunk.length)
    if (this.socket.write(chunk)) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.drainWaiters.add({ resolve, reject })
    })
  }

  read(max: number): Promise<Buffer | null> {
    if (this.reader !== null) return Promise.reject(new DataConnectionError('DATA_CONN_BUSY', 'one read at a time'))
    return new Promise<Buffer | null>((resolve, reject) => {
      this.reader = { max: Math.max(1, max), resolve, reject }
      this.serveReader()
    })
  }

  end(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    this.ended ??= new Promise<void>((resolve, reject) => {
      this.socket.end(() => {
        if (this.failure !== null && this.failure.code !== 'DATA_CONN_CLOSED') reject(this.failure)
        else resolve()
      })
    })
    return this.ended
  }

  close(err?: DataConnectionError): void {
    this.fail(err ?? new DataConnectionError('DATA_CONN_CLOSED', `the data connection to ${this.peer} was closed here`))
    this.socket.destroy()
  }

  private fail(err: DataConnectionError): void {
    if (this.failure !== null) return
    this.failure = err
    for (const w of this.drainWaiters) w.reject(err)
    this.drainWaiters.clear()
    this.serveReader()
  }

  private serveReader(): void {
    const r = this.reader
    if (r === null) return
    const head = this.queue[0]
    if (head !== undefined) {
      this.reader = null
      let out: Buffer
      if (head.length <= r.max) {
        this.queue.shift()
        out = head
      } else {
        out = head.subarray(0, r.max)
        this.queue[0] = head.subarray(r.max)
      }
      this.queued -= out.length
      this.bytesRead += BigInt(out.length)
      if (this.queued < READ_HIGH_WATER && this.socket.isPaused() && this.failure === null) this.socket.resume()
      r.resolve(out)
    } else if (this.eof) {
      this.reader = null
      r.resolve(null)
    } else if (this.failure !== null) {
      this.reader = null
      // A peer that went away cleanly is the end of the stream; a reset is an error.
      if (this.failure.code === 'DATA_CONN_CLOSED' && this.socket.readableEnded) r.resolve(null)
      else r.reject(this.failure)
    }
  }
}
