/*
 * NDMP_ADDR_LOCAL: the data connection inside this process. Two one-way channels, each holding
 * at most CHANNEL_CAPACITY unread bytes: a writer waits until the reader takes some (the same
 * backpressure a socket gives). Chunks are passed by reference, not copied.
 */
import { DataConnectionError } from './connection-error.ts'
import type { DataEndpoint } from './connection.ts'

export const CHANNEL_CAPACITY = 1024 * 1024

class Channel {
  private readonly queue: Buffer[] = []
  private queued = 0
  /** The writer ended (or closed): the reader gets what is queued, then null. */
  eof = false
  /** The reader closed: writes fail, the queue is dropped. */
  gone: DataConnectionError | null = null
  private reader: { max: number; resolve: (b: Buffer | null) => void; reject: (e: DataConnectionError) => void } | null = null
  private readonly writers = new Set<{ resolve: () => void; reject: (e: DataConnectionError) => void }>()

  push(chunk: Buffer): Promise<void> {
    if (this.gone !== null) return Promise.reject(this.gone)
    this.queue.push(chunk)
    this.queued += chunk.length
    this.serve()
    if (this.queued < CHANNEL_CAPACITY) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.writers.add({ resolve, reject })
    })
  }

  pull(max: number, own: DataConnectionError | null): Promise<Buffer | null> {
    if (own !== null) return Promise.reject(own)
    if (this.reader !== null) return Promise.reject(new DataConnectionError('DATA_CONN_BUSY', 'one read at a time'))
    return new Promise<Buffer | null>((resolve, reject) => {
      this.reader = { max: Math.max(1, max), resolve, reject }
      this.serve()
    })
  }

  finish(): void {
    this.eof = true
    this.serve()
  }

  /** The reading side closed: its pending read rejects with `own`, writers with `toWriter`. */
  drop(own: DataConnectionError, toWriter: DataConnectionError): void {
    if (this.gone !== null) return
    this.gone = toWriter
    this.queue.length = 0
    this.queued = 0
    for (const w of this.writers) w.reject(toWriter)
    this.writers.clear()
    const r = this.reader
    this.reader = null
    r?.reject(own)
  }

  private serve(): void {
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
      if (this.queued < CHANNEL_CAPACITY) {
        for (const w of this.writers) w.resolve()
        this.writers.clear()
      }
      r.resolve(out)
    } else if (this.eof) {
      this.reader = null
      r.resolve(null)
    }
  }
}

class LocalEndpoint implements DataEndpoint {
  readonly kind = 'local' as const
  readonly peer = 'local'
  bytesWritten = 0n
  bytesRead = 0n
  readonly closed: Promise<{ error: DataConnectionError | undefined }>
  private readonly out: Channel
  private readonly in: Channel
  private failure: DataConnectionError | null = null
  private readonly settle: () => void
  other: LocalEndpoint | null = null

  constructor(out: Channel, inbound: Channel) {
    this.out = out
    this.in = inbound
    let settle: () => void = () => undefined
    this.closed = new Promise((resolve) => {
      settle = () => {
        resolve({ error: undefined })
      }
    })
    this.settle = settle
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== null) throw this.failure
    if (this.out.eof) throw new DataConnectionError('DATA_CONN_ENDED', 'write after end')
    if (chunk.length === 0) return
    this.bytesWritten += BigInt(chunk.length)
    await this.out.push(chunk)
  }

  async read(max: number): Promise<Buffer | null> {
    const b = await this.in.pull(max, this.failure)
    if (b !== null) this.bytesRead += BigInt(b.length)
    return b
  }

  end(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    this.out.finish()
    this.settleIfDone()
    return Promise.resolve()
  }

  close(err?: DataConnectionError): void {
    if (this.failure !== null) return
    const own = err ?? new DataConnectionError('DATA_CONN_CLOSED', 'the LOCAL data connection was closed here')
    this.failure = own
    this.out.finish()
    this.in.drop(own, new DataConnectionError('DATA_CONN_CLOSED', 'the LOCAL data connection was closed by the peer'))
    // As a socket's destroy: the peer cannot write any more, and may still read what we sent.
    this.other?.peerClosed()
    this.settle()
  }

  private peerClosed(): void {
    this.settle()
  }

  /** Both directions ended: the connection is over, as a socket's 'close' after both FINs. */
  settleIfDone(): void {
    if (this.out.eof && this.in.eof) {
      this.settle()
      this.other?.settle()
    }
  }
}

/** A connected pair of LOCAL endpoints: what one writes, the other reads. */
export function localPipe(): [DataEndpoint, DataEndpoint] {
  const aToB = new Channel()
  const bToA = new Channel()
  const a = new LocalEndpoint(aToB, bToA)
  const b = new LocalEndpoint(bToA, aToB)
  a.other = b
  b.other = a
  return [a, b]
}
