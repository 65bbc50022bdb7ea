/*
 * One FUSE connection: requests are read from /dev/fuse on this thread
 * when the native reader is there (native/poll.c: the fd non-blocking,
 * watched by the event loop), else by a worker thread (reader-worker.ts)
 * that hands each over; this thread runs them concurrently and writes each
 * reply with one writev(2), in whatever order they finish (the kernel
 * matches replies by `unique`). The main-thread reader saves a thread
 * wake-up per request, which is most of a small request's latency. FORGET and BATCH_FORGET get no reply;
 * INTERRUPT answers the named request at once with EINTR, and its late
 * result is dropped (its `dropped` hook undoes what it kept, such as a
 * lookup count or an open file).
 */
import { closeSync, writev, writevSync } from 'node:fs'
import { constants } from 'node:os'
import { MessageChannel, Worker } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import type { InHeader } from './abi.ts'
import { IN_HEADER_SIZE, OP, OP_NAMES, outHeader } from './abi.ts'
import { fusePoll } from './native-poll.ts'
import type { FusePoll } from './native-poll.ts'
import { READER_KEEP, READER_SOURCE } from './reader-worker.ts'
import type { ReaderData, ReaderMessage } from './reader-worker.ts'

export interface FuseRequest extends InHeader {
  /** The bytes after fuse_in_header (owned: the reader hands over a buffer per request). */
  body: Buffer
  /**
   * Keep the body beyond the handler (a WRITE's data held until committed).
   * Returns what to call once done with it, or null when there is nothing
   * to give back; either way the session no longer takes the buffer back
   * when the handler ends.
   */
  keep(): (() => void) | null
  /** Aborted when the kernel interrupts the request (FUSE_INTERRUPT): a blocked lock wait gives up on it. */
  signal(): AbortSignal
}

/** What a request answers: an errno, or a body; hooks learn whether the kernel got it. */
export interface Reply {
  errno?: number
  data?: readonly Buffer[]
  /** The kernel accepted the reply (a lookup count or file handle now belongs to it). */
  sent?: () => void
  /** The reply was not delivered (interrupted, or the kernel gave up on the request). */
  dropped?: () => void
}

/** Runs one request; null: no reply (FORGET, BATCH_FORGET). Never rejects. */
export type FuseHandler = (req: FuseRequest) => Promise<Reply | null>

/** The logging this layer needs (a pino logger fits). */
export interface FuseLogger {
  debug(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

const EINTR = 4
const ENOSYS = 38
/** Requests this long or longer (WRITEs) travel in buffers the reader gets back. */
const LARGE_REQUEST = 64 * 1024

const { EAGAIN, EINTR: EINTR_ERRNO, ENOENT } = constants.errno
/** Requests read per readable event before the loop gets a turn (epoll is level-triggered: the rest wait for the next). */
const READ_BATCH = 64
/** One past the largest opcode we name: the bound of the per-opcode counts. */
const OP_COUNT = Math.max(...Object.values(OP)) + 1

/** The errno's name ('ENODEV'), as Node's errors carry it. */
function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name
  return `errno ${String(errno)}`
}

/**
 * One request as the handler sees it, and what the session tracks of it
 * until answered. A class rather than a spread of the header and closures:
 * one object of one shape per request (the spread and two closures were
 * among the daemon's own costs per request, which copies of small files
 * pay 9 times per file).
 */
class Request implements FuseRequest {
  readonly len: number
  readonly opcode: number
  readonly unique: bigint
  readonly nodeid: bigint
  readonly uid: number
  readonly gid: number
  readonly pid: number
  readonly body: Buffer
  /** When it was read (performance.now(), ms): its time in the daemon runs until the reply is written. */
  readonly readAt: number
  interrupted = false
  /** Made only for a request that asks for its signal. */
  private abort: AbortController | null = null
  /** How the buffer goes back to the reader (large requests), until kept or done. */
  private owned: (() => void) | null

  constructor(b: Buffer, giveBack: (() => void) | null) {
    this.len = b.readUInt32LE(0)
    this.opcode = b.readUInt32LE(4)
    this.unique = b.readBigUInt64LE(8)
    this.nodeid = b.readBigUInt64LE(16)
    this.uid = b.readUInt32LE(24)
    this.gid = b.readUInt32LE(28)
    this.pid = b.readUInt32LE(32)
    this.body = b.subarray(IN_HEADER_SIZE)
    this.owned = giveBack
    this.readAt = performance.now()
  }

  keep(): (() => void) | null {
    const g = this.owned
    this.owned = null
    return g
  }

  signal(): AbortSignal {
    this.abort ??= new AbortController()
    if (this.interrupted) this.abort.abort()
    return this.abort.signal
  }

  /** Abort its signal, if it asked for one (a waiting lock gives up). */
  abortSignal(): void {
    this.abort?.abort()
  }

  /** The handler is done: the buffer goes back unless kept. */
  done(): void {
    const g = this.owned
    this.owned = null
    g?.()
  }
}

export class FuseSession {
  readonly fd: number
  /** Requests seen by opcode (counts, by name, reads them). */
  private readonly seen: number[] = []
  /** Milliseconds from reading each request to writing its reply, summed by opcode (micros reads them). */
  private readonly busy: number[] = []
  /** Resolves with the reason the connection ended ('ENODEV' after umount). */
  readonly ended: Promise<string>
  private readonly handler: FuseHandler
  private readonly log: FuseLogger
  private readonly pending = new Map<bigint, Request>()
  private worker: Worker | null = null
  /** The main-thread reader's watch, when it is the one reading. */
  private polling: { poll: FusePoll; handle: object } | null = null
  /** Where large request buffers go back to the reader. */
  private back: MessagePort | null = null
  private endWith: (code: string) => void = () => undefined
  private closed = false

  constructor(fd: number, handler: FuseHandler, log: FuseLogger) {
    this.fd = fd
    this.handler = handler
    this.log = log
    this.ended = new Promise(resolve => {
      this.endWith = resolve
    })
  }

  /** Start reading; only once mount(2) has attached the fd (a read before fails with EPERM). */
  start(bufferSize: number): void {
    const poll = fusePoll()
    if (poll !== null) this.startPolling(poll, bufferSize)
    else this.startWorker(bufferSize)
  }

  /** Requests seen per operation name. */
  get counts(): Record<string, number> {
    const out: Record<string, number> = {}
    this.seen.forEach((n, op) => {
      if (n > 0) out[OP_NAMES[op] ?? `op${String(op)}`] = n
    })
    return out
  }

  /**
   * Microseconds from reading a request to writing its reply, summed per
   * operation name (answered requests only; FORGET has no reply). With
   * counts, the mean time a request of each kind spends in the daemon,
   * NFS round trips included: where a small file's latency goes without a
   * profiler (bench/README.md, session 34).
   */
  get micros(): Record<string, number> {
    const out: Record<string, number> = {}
    this.busy.forEach((ms, op) => {
      out[OP_NAMES[op] ?? `op${String(op)}`] = Math.round(ms * 1000)
    })
    return out
  }

  /** Which reader runs: 'main' (native, this thread) or 'worker'. */
  get reader(): 'main' | 'worker' | null {
    return this.polling !== null ? 'main' : this.worker !== null ? 'worker' : null
  }

  private startPolling(poll: FusePoll, size: number): void {
    // Large requests (WRITEs) keep the buffer they were read into until given back; those come back here.
    const free: Buffer[] = []
    let buf: Buffer = Buffer.allocUnsafeSlow(size)
    const onReadable = (): void => {
      for (let i = 0; i < READ_BATCH && !this.closed; i++) {
        const n = poll.readInto(this.fd, buf)
        if (n < 0) {
          if (n === -EAGAIN) return
          // ENOENT: a request interrupted before we read it; EINTR: read again.
          if (n === -ENOENT || n === -EINTR_ERRNO) continue
          this.finish(errnoName(-n))
          return
        }
        if (n === 0) {
          this.finish('EOF')
          return
        }
        if (n >= LARGE_REQUEST) {
          const own = buf
          buf = free.pop() ?? Buffer.allocUnsafeSlow(size)
          this.onRequest(own.subarray(0, n), () => {
            if (free.length < READER_KEEP) free.push(own)
          })
        } else {
          this.onRequest(Buffer.from(buf.subarray(0, n)), null)
        }
      }
    }
    this.polling = { poll, handle: poll.watch(this.fd, onReadable) }
  }

  private startWorker(bufferSize: number): void {
    const { port1, port2 } = new MessageChannel()
    this.back = port1
    const data: ReaderData = { fd: this.fd, bufferSize, largeMin: LARGE_REQUEST, back: port2 }
    const w = new Worker(READER_SOURCE, { eval: true, workerData: data, transferList: [port2] })
    this.worker = w
    w.on('message', (m: ReaderMessage) => {
      if (m.kind === 'request') this.onRequest(Buffer.from(m.data, 0, m.length), m.large ? () => { this.recycle(m.data) } : null)
      else this.finish(m.code)
    })
    w.on('error', err => {
      this.log.error({ err }, 'fuse reader failed')
      this.finish('EREADER')
    })
    w.on('exit', () => {
      this.finish('EXIT')
    })
  }

  /** Requests still being worked on. */
  get inFlight(): number {
    return this.pending.size
  }

  /**
   * A notification written from the libuv threadpool, resolved once the
   * kernel took it (false: refused, e.g. ENOENT for an entry it does not
   * hold). For NOTIFY_INVAL_ENTRY, which waits for the parent directory's
   * lock: a request we have yet to answer may hold it, and this thread must
   * stay free to answer it.
   */
  notifyAsync(code: number, body: Buffer): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    return new Promise(resolve => {
      writev(this.fd, [outHeader(body.length, -code, 0n), body], err => { resolve(err === null) })
    })
  }

  /** A notification (unique 0, error = code); false if the kernel refused it. */
  notify(code: number, body: Buffer): boolean {
    return this.write([outHeader(body.length, -code, 0n), body]) === null
  }

  private finish(code: string): void {
    if (this.closed) return
    this.closed = true
    const w = this.worker
    this.worker = null
    if (this.polling !== null) this.polling.poll.unwatch(this.polling.handle)
    this.polling = null
    this.back?.close()
    this.back = null
    // The worker has left its read loop; close the fd once it has exited.
    const close = (): void => {
      try {
        closeSync(this.fd)
      } catch {
        // already closed
      }
      this.endWith(code)
    }
    if (w === null || code === 'EXIT') close()
    else w.once('exit', close)
  }

  /** Give a large request's buffer back to the reader (it is detached here: any view left reads as empty). */
  private recycle(ab: ArrayBuffer): void {
    this.back?.postMessage(ab, [ab])
  }

  /** b: one request; giveBack: how its buffer goes back to the reader (large requests), else null. */
  private onRequest(b: Buffer, giveBack: (() => void) | null): void {
    if (b.length < IN_HEADER_SIZE) {
      giveBack?.()
      return
    }
    const req = new Request(b, giveBack)
    const op = req.opcode
    // Opcodes are small numbers (fuse.h), but the kernel's are not ours to trust: count only those we name.
    if (op < OP_COUNT) this.seen[op] = (this.seen[op] ?? 0) + 1
    if (op === OP.INTERRUPT) {
      this.interrupt(req.body.readBigUInt64LE(0))
      req.done()
      return
    }
    const tracked = op !== OP.FORGET && op !== OP.BATCH_FORGET
    if (tracked) this.pending.set(req.unique, req)
    void this.handler(req).then(
      r => {
        this.complete(req, r)
        req.done()
      },
      (err: unknown) => {
        this.log.error({ err, op: OP_NAMES[op] ?? `op${String(op)}` }, 'fuse handler threw')
        this.complete(req, { errno: ENOSYS })
        req.done()
      },
    )
  }

  private complete(req: Request, r: Reply | null): void {
    const unique = req.unique
    this.pending.delete(unique)
    if (r === null) return
    if (req.interrupted || this.closed) {
      r.dropped?.()
      return
    }
    const data = r.data ?? []
    const len = data.reduce((n, d) => n + d.length, 0)
    const err = this.write([outHeader(r.errno === undefined || r.errno === 0 ? len : 0, r.errno ?? 0, unique), ...(r.errno === undefined || r.errno === 0 ? data : [])])
    const op = req.opcode
    if (op < OP_COUNT) this.busy[op] = (this.busy[op] ?? 0) + (performance.now() - req.readAt)
    if (err === null) r.sent?.()
    else r.dropped?.()
  }

  /** FUSE docs: a request can be answered EINTR once interrupted; an unknown unique was already answered. */
  private interrupt(unique: bigint): void {
    const p = this.pending.get(unique)
    if (p === undefined || p.interrupted) return
    p.interrupted = true
    this.write([outHeader(0, EINTR, unique)])
    p.abortSignal()
  }

  /** One writev; ENOENT means the request is gone (interrupted, aborted): not an error worth logging. */
  private write(parts: Buffer[]): string | null {
    try {
      writevSync(this.fd, parts)
      return null
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
      if (code !== 'ENOENT' && code !== 'ENODEV' && code !== 'EBADF') this.log.warn({ err }, 'fuse reply refused')
      return code
    }
  }
}
