/*
 * Reply records off a client's TCP stream (RFC 5531 §11 record marking),
 * under a receive limit the client may change (it learns its READ size from
 * FSINFO after connecting). Unlike xdr/record.ts, which a server uses and
 * for which an oversized record ends the connection, a reply too large for
 * the limit is skipped: its xid (the record's first word) is reported once,
 * so that one call fails, and its remaining bytes are read and dropped
 * without being kept. The connection and every other call on it carry on;
 * dropping the connection instead would make the client re-send the calls
 * in flight, and a re-sent READ would draw the same oversized reply again.
 *
 * A large record's last fragment (a READ reply) goes into a buffer of the
 * record's own, from the pool when it is block-sized, as soon as its header
 * is in; fed by a socket's `onread` (readTarget/pushRead), the kernel then
 * reads the rest of it straight there. Other bytes are read into one
 * scratch buffer, and only what a record keeps is copied out of it: no
 * buffer is allocated per socket read, and nothing is copied twice.
 */
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { FRAGMENT_COST } from '../../xdr/record.ts'
import type { BufferPool } from './buffer-pool.ts'

const LAST_FRAGMENT = 0x8000_0000
const LENGTH_MASK = 0x7fff_ffff
/** Records at least this large are assembled in a buffer of their own from their last fragment's header on. */
const DIRECT_MIN = 64 * 1024
/** The buffer reads go through while no record is read directly. */
export const SCRATCH_SIZE = 64 * 1024

export interface ReplyRecordSink {
  /** A complete record within the limit, in memory of its own unless push() was given chunks to keep. */
  record(r: Buffer): void
  /** The record of this xid exceeds the limit: at least `length` bytes were announced. Its bytes are being dropped. */
  tooLarge(xid: number, length: number): void
}

export class ReplyRecords {
  /** Largest record accepted, in bytes (each fragment also costs FRAGMENT_COST, as in xdr/record.ts). */
  limit: number
  private readonly sink: ReplyRecordSink
  private readonly pool: BufferPool | null
  private readonly header = Buffer.alloc(4)
  private headerFilled = 0
  /** Bytes left of the fragment being read, or -1 while reading a fragment header. */
  private fragmentLeft = -1
  private lastFragment = false
  private fragments = 0
  private parts: Buffer[] = []
  private recordLength = 0
  /** Skipping the current record: its first bytes (for the xid). */
  private skipping = false
  private head: Buffer[] = []
  private headLength = 0
  private announced = 0
  /** The record being assembled in its own buffer, and how much of it is filled. */
  private direct: Buffer | null = null
  private directFilled = 0
  /** The view readTarget() handed out last. */
  private target: Buffer | null = null

  /** pool: where block-sized records get their buffers (whoever consumes a READ may give its record back). */
  constructor(limit: number, sink: ReplyRecordSink, pool: BufferPool | null = null) {
    this.limit = limit
    this.sink = sink
    this.pool = pool
  }

  /** Bytes held for a record not yet complete (tests). */
  get buffered(): number {
    return this.recordLength + this.headLength + this.directFilled
  }

  /** Where the next socket read should land: the unfilled rest of the record read directly, else `scratch`. Never past the record, so the next header lands in scratch. */
  readTarget(scratch: Buffer): Buffer {
    this.target = this.direct === null ? scratch : this.direct.subarray(this.directFilled)
    return this.target
  }

  /** `n` bytes were read into the buffer readTarget() returned last. */
  pushRead(buf: Buffer, n: number): void {
    if (this.direct !== null && buf === this.target) {
      this.directFilled += n
      this.fragmentLeft -= n
      if (this.fragmentLeft === 0) this.endFragment()
      return
    }
    this.push(buf.subarray(0, n), true)
  }

  /** Bytes off the stream. transient: `chunk` is reused after this call, so whatever is kept is copied out. */
  push(chunk: Buffer, transient = false): void {
    let at = 0
    while (at < chunk.length) {
      if (this.fragmentLeft < 0) {
        const n = Math.min(4 - this.headerFilled, chunk.length - at)
        chunk.copy(this.header, this.headerFilled, at, at + n)
        this.headerFilled += n
        at += n
        if (this.headerFilled < 4) return
        this.headerFilled = 0
        this.startFragment(this.header.readUInt32BE(0))
        if (this.fragmentLeft === 0) this.endFragment()
        continue
      }
      const n = Math.min(this.fragmentLeft, chunk.length - at)
      const piece = chunk.subarray(at, at + n)
      at += n
      this.fragmentLeft -= n
      if (this.skipping) {
        this.drop(piece)
      } else if (this.direct !== null) {
        this.directFilled += piece.copy(this.direct, this.directFilled)
      } else {
        // Only what is kept is copied out of a transient chunk (a record that ends in it: exactly that record).
        this.parts.push(transient ? Buffer.from(piece) : piece)
        this.recordLength += n
      }
      if (this.fragmentLeft === 0) this.endFragment()
    }
  }

  private startFragment(header: number): void {
    const length = header & LENGTH_MASK
    this.lastFragment = (header & LAST_FRAGMENT) !== 0
    this.fragmentLeft = length
    this.fragments++
    if (this.skipping) {
      this.announced += length
      return
    }
    // Checked before anything is kept: the announced length alone decides.
    if (this.recordLength + length + FRAGMENT_COST * this.fragments > this.limit) {
      this.skipping = true
      this.announced = this.recordLength + length
      // What came of the record so far may hold the xid; nothing else of it is kept.
      const kept = this.parts
      this.parts = []
      this.recordLength = 0
      for (const p of kept) this.drop(p)
      return
    }
    const size = this.recordLength + length
    if (!this.lastFragment || size < DIRECT_MIN) return
    // Block-sized records (READs) from the pool; a smaller one would waste most of a slab.
    const pool = this.pool
    const dest = pool !== null && size * 2 >= pool.slabSize && size <= pool.slabSize ? pool.take(size) : Buffer.allocUnsafe(size)
    let filled = 0
    for (const p of this.parts) filled += p.copy(dest, filled)
    this.parts = []
    this.recordLength = 0
    this.direct = dest
    this.directFilled = filled
  }

  /** Bytes of a skipped record: only its first four are looked at, for the xid. */
  private drop(piece: Buffer): void {
    if (this.headLength >= 4 || piece.length === 0) return
    const part = piece.subarray(0, 4 - this.headLength)
    this.head.push(Buffer.from(part))
    this.headLength += part.length
    if (this.headLength === 4) this.sink.tooLarge(Buffer.concat(this.head, 4).readUInt32BE(0), this.announced)
  }

  private endFragment(): void {
    this.fragmentLeft = -1
    if (!this.lastFragment) return
    this.fragments = 0
    if (this.skipping) {
      // A record too short to carry an xid was never reported: nobody waits for it.
      this.skipping = false
      this.head = []
      this.headLength = 0
      this.announced = 0
      return
    }
    const direct = this.direct
    if (direct !== null) {
      this.direct = null
      this.directFilled = 0
      this.target = null
      this.sink.record(direct)
      return
    }
    const parts = this.parts
    const length = this.recordLength
    this.parts = []
    this.recordLength = 0
    const only = parts[0]
    this.sink.record(parts.length === 1 && only !== undefined ? only : Buffer.concat(parts, length))
  }
}

/** Open a TCP connection whose reads go through `records` (net's `onread`: no buffer allocated per read). */
export function dialReplies(host: string, port: number, records: ReplyRecords, localAddress?: string): Promise<Socket> {
  const scratch = Buffer.allocUnsafe(SCRATCH_SIZE)
  return new Promise((resolve, reject) => {
    const socket = netConnect({
      host,
      port,
      ...(localAddress === undefined ? {} : { localAddress }),
      onread: {
        buffer: () => records.readTarget(scratch),
        callback: (n: number, buf: Uint8Array): boolean => {
          records.pushRead(buf as Buffer, n)
          return true
        },
      },
    })
    const onError = (err: Error): void => {
      socket.destroy()
      reject(err)
    }
    socket.once('error', onError)
    socket.once('connect', () => {
      socket.off('error', onError)
      resolve(socket)
    })
  })
}
