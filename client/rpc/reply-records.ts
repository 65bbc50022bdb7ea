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
 */
import { FRAGMENT_COST } from '../../xdr/record.ts'

const LAST_FRAGMENT = 0x8000_0000
const LENGTH_MASK = 0x7fff_ffff

export interface ReplyRecordSink {
  /** A complete record within the limit (a view of the socket's chunk when it came in one). */
  record(r: Buffer): void
  /** The record of this xid exceeds the limit: at least `length` bytes were announced. Its bytes are being dropped. */
  tooLarge(xid: number, length: number): void
}

export class ReplyRecords {
  /** Largest record accepted, in bytes (each fragment also costs FRAGMENT_COST, as in xdr/record.ts). */
  limit: number
  private readonly sink: ReplyRecordSink
  private readonly header = Buffer.alloc(4)
  private headerFilled = 0
  /** Bytes left of the fragment being read, or -1 while reading a fragment header. */
  private fragmentLeft = -1
  private lastFragment = false
  private fragments = 0
  private parts: Buffer[] = []
  private recordLength = 0
  /** Skipping the current record: its first bytes (for the xid) and whether it was reported. */
  private skipping = false
  private head: Buffer[] = []
  private headLength = 0
  private announced = 0

  constructor(limit: number, sink: ReplyRecordSink) {
    this.limit = limit
    this.sink = sink
  }

  /** Bytes held for a record not yet complete (tests). */
  get buffered(): number {
    return this.recordLength + this.headLength
  }

  push(chunk: Buffer): void {
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
      if (this.skipping) this.drop(piece)
      else {
        this.parts.push(piece)
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
    if (this.recordLength + length + FRAGMENT_COST * this.fragments <= this.limit) return
    this.skipping = true
    this.announced = this.recordLength + length
    // What came of the record so far may hold the xid; nothing else of it is kept.
    const kept = this.parts
    this.parts = []
    this.recordLength = 0
    for (const p of kept) this.drop(p)
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
    const parts = this.parts
    const length = this.recordLength
    this.parts = []
    this.recordLength = 0
    const only = parts[0]
    this.sink.record(parts.length === 1 && only !== undefined ? only : Buffer.concat(parts, length))
  }
}
