/*
 * Direct access restore (DAR) on the DATA side (draft-skardal-ndmpv4-04 §3.7.4 "fh_info",
 * §3.12 NOTIFY_DATA_READ): instead of the whole stream, the data service asks for the records of
 * each chosen member. fh_info is the stream offset of the member's first header (file-history.ts
 * sends it so). The mover serves one MOVER_READ at a time (a second answers
 * READ_IN_PROGRESS_ERR), so each request is an exact length: the header block first, then, as
 * the headers say, the extension bodies with the next header, then the member's data and padding.
 * What we read is handed to the tar reader as one stream — the chosen members back to back and a
 * tar end-of-archive — so the restore code (its path rules included) runs unchanged.
 * A directory brings its subtree, which follows it in the stream with no length known up front:
 * from a directory on, the rest of the stream is read (one read to the end).
 */
import { BLOCK, TYPE, decodeHeader, padded } from '../../../backup/tar/header.ts'
import { MAX_PAX_BYTES, parsePax } from '../../../backup/tar/pax.ts'
import { BackupFormatError } from '../../../backup/types.ts'
import type { ByteSource } from '../../../backup/types.ts'

/** NOTIFY_DATA_READ's "to the end" (the NDMP SDK's NDMP_LENGTH_INFINITY). */
export const LENGTH_INFINITY = 0xffffffffffffffffn

/** tar's end of archive: two zero blocks. */
const END_OF_ARCHIVE = 2 * BLOCK
/** Extension headers (pax x/g, GNU L/K) before one member; more is a corrupt stream. */
const MAX_EXTENSIONS = 8
const CHUNK = 1024 * 1024

export interface DarRequester {
  /** Asks the DMA for stream bytes [offset, offset + length) (NOTIFY_DATA_READ). */
  dataRead(offset: bigint, length: bigint): void
}

/** Reads exact amounts from the data connection. */
class Exact {
  readonly #src: ByteSource
  #pending: Buffer | null = null
  constructor(src: ByteSource) {
    this.#src = src
  }

  /** Up to `n` bytes (fewer: the connection ended). */
  async upTo(n: number): Promise<Buffer | null> {
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

  async exact(n: number, at: bigint, streamName: string): Promise<Buffer> {
    const parts: Buffer[] = []
    let have = 0
    while (have < n) {
      const b = await this.upTo(n - have)
      if (b === null) throw new BackupFormatError(streamName, at + BigInt(have), `direct access: the mover sent ${have} of ${n} bytes asked for`)
      parts.push(b)
      have += b.length
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n)
  }
}

/** One chosen member, by its stream offset. */
export interface DarTarget {
  offset: bigint
}

/** Bytes read from the mover by a direct access restore: headers, data and padding. */
export interface DarStats {
  requests: number
  bytes: bigint
}

/**
 * A ByteSource yielding the chosen members (sorted by offset; one inside a member already read is
 * skipped) and an end of archive, each read from the mover by NOTIFY_DATA_READ at its offset.
 */
export class DirectAccessSource implements ByteSource {
  readonly stats: DarStats = { requests: 0, bytes: 0n }
  readonly #in: Exact
  readonly #peer: DarRequester
  readonly #offsets: bigint[]
  readonly #name: string
  /** Header bytes of the current member, not yet handed out. */
  #head: Buffer | null = null
  /** Data (and padding) of the current member still to pass through. */
  #left = 0n
  /** Stream position after what was asked so far (a member starting before it was covered). */
  #end = 0n
  #next = 0
  /** From a directory on: pass the rest of the stream through. */
  #rest = false
  #trailer = Buffer.alloc(END_OF_ARCHIVE)

  constructor(input: ByteSource, peer: DarRequester, targets: readonly DarTarget[], streamName: string) {
    this.#in = new Exact(input)
    this.#peer = peer
    this.#offsets = [...new Set(targets.map((t) => t.offset))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    this.#name = streamName
  }

  #ask(offset: bigint, length: bigint): void {
    this.stats.requests++
    this.#peer.dataRead(offset, length)
  }

  async read(max: number): Promise<Buffer | null> {
    for (;;) {
      if (this.#head !== null) {
        const h = this.#head
        this.#head = null
        if (h.length > max) this.#head = h.subarray(max)
        return h.subarray(0, Math.min(max, h.length))
      }
      if (this.#rest) {
        const b = await this.#in.upTo(Math.min(max, CHUNK))
        if (b !== null) this.stats.bytes += BigInt(b.length)
        return b
      }
      if (this.#left > 0n) {
        const want = this.#left < BigInt(Math.min(max, CHUNK)) ? Number(this.#left) : Math.min(max, CHUNK)
        const b = await this.#in.exact(want, this.#end - this.#left, this.#name)
        this.#left -= BigInt(b.length)
        this.stats.bytes += BigInt(b.length)
        return b
      }
      const off = this.#offsets[this.#next]
      if (off === undefined) return this.#tail(max)
      this.#next++
      if (off < this.#end) continue
      await this.#member(off)
    }
  }

  #tail(max: number): Buffer | null {
    if (this.#trailer.length === 0) return null
    const b = this.#trailer.subarray(0, Math.min(max, this.#trailer.length))
    this.#trailer = this.#trailer.subarray(b.length)
    return b
  }

  /** Reads the headers of the member at `off`; leaves its data to pass through (or the rest of the stream, for a directory). */
  async #member(off: bigint): Promise<void> {
    const heads: Buffer[] = []
    let pos = off
    let paxSize: bigint | null = null
    this.#ask(pos, BigInt(BLOCK))
    let block = await this.#in.exact(BLOCK, pos, this.#name)
    for (let ext = 0; ; ext++) {
      const h = decodeHeader(block)
      if (!h.ok) throw new BackupFormatError(this.#name, pos, `direct access: no tar header at offset ${off} (${h.reason}): the file history does not match this tape`)
      heads.push(block)
      this.stats.bytes += BigInt(BLOCK)
      pos += BigInt(BLOCK)
      const t = h.fields.type
      const isExt = t === TYPE.paxLocal || t === TYPE.paxGlobal || t === TYPE.gnuLongName || t === TYPE.gnuLongLink
      if (!isExt) {
        const size = paxSize ?? h.fields.size
        // Links, directories and devices carry no body (a dumpdir travels in the pax header).
        const body = t === TYPE.dir || t === TYPE.hardLink || t === TYPE.symlink || t === TYPE.char || t === TYPE.block || t === TYPE.fifo ? 0n : padded(size)
        this.#head = Buffer.concat(heads)
        if (t === TYPE.dir) {
          // The subtree follows with no length known: read on to the end of the stream.
          this.#ask(pos, LENGTH_INFINITY)
          this.#rest = true
          return
        }
        if (body > 0n) this.#ask(pos, body)
        this.#left = body
        this.#end = pos + body
        return
      }
      if (ext >= MAX_EXTENSIONS) throw new BackupFormatError(this.#name, pos, `direct access: more than ${MAX_EXTENSIONS} extension headers before one member`)
      if (h.fields.size > BigInt(MAX_PAX_BYTES)) throw new BackupFormatError(this.#name, pos, `direct access: extension header of ${h.fields.size} bytes (at most ${MAX_PAX_BYTES})`)
      const len = Number(padded(h.fields.size))
      // The extension's body and the header after it, in one read.
      this.#ask(pos, BigInt(len + BLOCK))
      const both = await this.#in.exact(len + BLOCK, pos, this.#name)
      const bodyBytes = both.subarray(0, len)
      heads.push(bodyBytes)
      this.stats.bytes += BigInt(len)
      if (t === TYPE.paxLocal) {
        const p = parsePax(bodyBytes.subarray(0, Number(h.fields.size)))
        const s = p.ok ? p.records.get('size') : undefined
        if (s !== undefined && /^\d{1,20}$/.test(s.toString('ascii'))) paxSize = BigInt(s.toString('ascii'))
      }
      pos += BigInt(len)
      block = both.subarray(len)
    }
  }
}
