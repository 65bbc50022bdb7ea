/*
 * How a direct access restore (direct-access.ts) gets the stream ranges it wants from the mover:
 * it asks for one range (NOTIFY_DATA_READ, draft-skardal-ndmpv4-04 §3.12; the DMA turns it into
 * MOVER_READ, §3.9.9) and reads it whole before it asks for the next, always forward.
 *  - ExactRanges asks exactly the range. Our own mover serves any byte range (server/ndmp/mover).
 *  - RecordRanges asks whole records: the range widened down and up to multiples of the record
 *    size, and skips the lead bytes itself. The NDMP SDK's mover (ndmjob -o daemon, Debian
 *    amanda-server) serves nothing else: ndma_tape.c ndmta_write_quantum() waits for ever while
 *    what is left to read is under one record, and copies whole records from the record's start
 *    (bench/README.md, "Direct access through ndmjob's tape agent"). What the widened read sends
 *    past the range is kept on the connection: the next range, when it starts there (a member's
 *    body after its header), is read from it with no new request; otherwise the rest is drained
 *    first, as that mover takes no MOVER_READ until the last is sent (ndma_comm_dispatch.c
 *    answers ILLEGAL_STATE while bytes_left_to_read > 0).
 */
import type { ByteSource } from '../../../backup/types.ts'

/** Reads asked for by a direct access restore and the stream bytes that came on the connection. */
export interface DarStats {
  requests: number
  bytes: bigint
}

export interface DarRequester {
  /** Asks the DMA for stream bytes [offset, offset + length) (NOTIFY_DATA_READ). */
  dataRead(offset: bigint, length: bigint): void
}

/** One range at a time, read whole before the next is asked for; offsets never go back. */
export interface RangeInput {
  readonly stats: DarStats
  /** The next range wanted (its bytes come from upTo). */
  ask(offset: bigint, length: bigint): void
  /** Up to `n` bytes of the range (null: the connection ended). */
  upTo(n: number): Promise<Buffer | null>
}

/** A ByteSource read in pieces of at most `n` (a source that hands out more keeps the rest). */
class Pieces {
  readonly #src: ByteSource
  #pending: Buffer | null = null
  constructor(src: ByteSource) {
    this.#src = src
  }

  async take(n: number): Promise<Buffer | null> {
    let b = this.#pending
    this.#pending = null
    if (b === null) {
      b = await this.#src.read(n)
      if (b === null) return null
    }
    if (b.length > n) {
      this.#pending = b.subarray(n)
      b = b.subarray(0, n)
    }
    return b
  }
}

/** Asks each range as it is. */
export class ExactRanges implements RangeInput {
  readonly stats: DarStats = { requests: 0, bytes: 0n }
  readonly #in: Pieces
  readonly #peer: DarRequester
  constructor(src: ByteSource, peer: DarRequester) {
    this.#in = new Pieces(src)
    this.#peer = peer
  }

  ask(offset: bigint, length: bigint): void {
    this.stats.requests++
    this.#peer.dataRead(offset, length)
  }

  async upTo(n: number): Promise<Buffer | null> {
    const b = await this.#in.take(n)
    if (b !== null) this.stats.bytes += BigInt(b.length)
    return b
  }
}

/** Largest piece read (and dropped) at once while skipping bytes nobody wants. */
const SKIP_PIECE = 64 * 1024

/** Asks whole records from a record boundary; see the top of the file. */
export class RecordRanges implements RangeInput {
  readonly stats: DarStats = { requests: 0, bytes: 0n }
  readonly #in: Pieces
  readonly #peer: DarRequester
  readonly #record: bigint
  /** Stream position of the next byte on the connection. */
  #at = 0n
  /** End of the last read asked for: [#at, #end) is still to come. */
  #end = 0n
  /** The range wanted: [#pos, #stop). */
  #pos = 0n
  #stop = 0n
  /** The connection ended (the mover halted, e.g. our mover at the end of a stream it did not pad). */
  #ended = false

  constructor(src: ByteSource, peer: DarRequester, recordSize: number) {
    if (!Number.isInteger(recordSize) || recordSize < 1) throw new RangeError(`record size ${String(recordSize)}`)
    this.#in = new Pieces(src)
    this.#peer = peer
    this.#record = BigInt(recordSize)
  }

  ask(offset: bigint, length: bigint): void {
    this.#pos = offset
    this.#stop = offset + length
  }

  async upTo(n: number): Promise<Buffer | null> {
    for (;;) {
      if (this.#pos >= this.#stop) return null
      if (this.#pos >= this.#at && this.#pos < this.#end) {
        // The range starts in what the last read sends: drop what comes before it.
        if (!(await this.#skip(this.#pos))) return null
        const left = [BigInt(n), this.#stop - this.#pos, this.#end - this.#at].reduce((a, b) => (a < b ? a : b))
        const b = await this.#take(Number(left))
        if (b === null) return null
        this.#pos += BigInt(b.length)
        return b
      }
      if (this.#ended) return null
      // A new read: the last one's rest first (the mover takes no other read until it is sent).
      if (!(await this.#skip(this.#end))) return null
      const start = this.#pos - (this.#pos % this.#record)
      const over = this.#stop % this.#record
      const end = over === 0n ? this.#stop : this.#stop + this.#record - over
      this.stats.requests++
      this.#at = start
      this.#end = end
      this.#peer.dataRead(start, end - start)
    }
  }

  async #take(n: number): Promise<Buffer | null> {
    const b = await this.#in.take(n)
    if (b === null) {
      this.#ended = true
      return null
    }
    this.#at += BigInt(b.length)
    this.stats.bytes += BigInt(b.length)
    return b
  }

  /** Reads and drops the connection's bytes up to stream position `to`; false: it ended first. */
  async #skip(to: bigint): Promise<boolean> {
    while (this.#at < to) {
      const gap = to - this.#at
      if ((await this.#take(gap < BigInt(SKIP_PIECE) ? Number(gap) : SKIP_PIECE)) === null) return false
    }
    return true
  }
}
