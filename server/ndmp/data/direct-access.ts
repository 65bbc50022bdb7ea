/*
 * Direct access restore (DAR) on the DATA side (draft-skardal-ndmpv4-04 §3.7.4 "fh_info",
 * §3.12 NOTIFY_DATA_READ): instead of the whole stream, the data service asks for the records of
 * each chosen member. fh_info is the stream offset of the member's first header (file-history.ts
 * sends it so). The mover serves one MOVER_READ at a time (a second answers
 * READ_IN_PROGRESS_ERR), so each request is one range read whole: the header block first, then,
 * as the headers say, the extension bodies with the next header, then the member's data and
 * padding. Each range is asked exactly, or widened to whole records for a mover that serves only
 * those (range-input.ts).
 * What we read is handed to the tar reader as one stream — the chosen members back to back and a
 * tar end-of-archive — so the restore code (its path rules included) runs unchanged.
 * A directory brings its subtree, which follows it in the stream (the backup writes a directory
 * before what it holds): after a directory the members that follow are read one by one, header
 * first, for as long as their paths are below it.
 */
import { BLOCK, TYPE, decodeHeader, isZeroBlock, padded } from '../../../backup/tar/header.ts'
import { MAX_PAX_BYTES, parsePax } from '../../../backup/tar/pax.ts'
import { BackupFormatError } from '../../../backup/types.ts'
import type { ByteSource } from '../../../backup/types.ts'
import { ExactRanges, RecordRanges } from './range-input.ts'
import type { DarRequester, DarStats, RangeInput } from './range-input.ts'

export type { DarRequester, DarStats }

/** NOTIFY_DATA_READ's "to the end" (the NDMP SDK's NDMP_LENGTH_INFINITY). */
export const LENGTH_INFINITY = 0xffffffffffffffffn

/** tar's end of archive: two zero blocks. */
const END_OF_ARCHIVE = 2 * BLOCK
/** Extension headers (pax x/g, GNU L/K) before one member; more is a corrupt stream. */
const MAX_EXTENSIONS = 8
const CHUNK = 1024 * 1024

/** Reads exactly `n` bytes of the range asked last (fewer: a BackupFormatError at `at`). */
async function exact(input: RangeInput, n: number, at: bigint, streamName: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let have = 0
  while (have < n) {
    const b = await input.upTo(n - have)
    if (b === null) throw new BackupFormatError(streamName, at + BigInt(have), `direct access: the mover sent ${have} of ${n} bytes asked for`)
    parts.push(b)
    have += b.length
  }
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n)
}

/**
 * The stream's start, asked for by NOTIFY_DATA_READ(0, length) before a direct access restore
 * whose DMA did not say whether the backup is compressed (recover-run.ts): one block from our own
 * mover, one whole record from a mover over TCP (range-input.ts: the NDMP SDK's serves no less).
 * All of it is read, so the mover is idle again before the next range is asked; fewer bytes only
 * if the stream or the connection ended.
 */
export async function readStreamStart(input: ByteSource, peer: DarRequester, length = BLOCK): Promise<Buffer> {
  peer.dataRead(0n, BigInt(length))
  const parts: Buffer[] = []
  let have = 0
  while (have < length) {
    const b = await input.read(length - have)
    if (b === null) break
    parts.push(b)
    have += b.length
  }
  return Buffer.concat(parts, have)
}

/** One chosen member, by its stream offset. */
export interface DarTarget {
  offset: bigint
}

/** One member's headers as read at its offset. */
interface Member {
  offset: bigint
  heads: Buffer
  /** Our relative form: no leading './' or '/', no trailing '/'. */
  path: string
  dir: boolean
  /** Data and padding after the headers. */
  body: bigint
  /** Where the body starts. */
  dataAt: bigint
}

function normalPath(p: string): string {
  return p.split('/').filter((c) => c !== '' && c !== '.').join('/')
}

/** True when `path` is inside directory `dir` (both in our relative form; '' is the root, which holds everything else). */
function below(path: string, dir: string): boolean {
  return dir === '' ? path !== '' : path.startsWith(`${dir}/`)
}

function cText(b: Buffer): string {
  const z = b.indexOf(0)
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8')
}

const NO_BODY: ReadonlySet<number> = new Set([TYPE.dir, TYPE.hardLink, TYPE.symlink, TYPE.char, TYPE.block, TYPE.fifo])

/**
 * A ByteSource yielding the chosen members (sorted by offset; one inside what was already read is
 * skipped), each directory's subtree, and an end of archive, all read from the mover by
 * NOTIFY_DATA_READ at their offsets.
 */
export class DirectAccessSource implements ByteSource {
  readonly #in: RangeInput
  readonly #offsets: bigint[]
  readonly #name: string
  /** Header bytes of the current member, not yet handed out. */
  #head: Buffer | null = null
  /** Data (and padding) of the current member still to pass through. */
  #left = 0n
  /** Stream position after what was read so far (a target starting before it was covered). */
  #end = 0n
  #next = 0
  /** Directories whose subtree is being walked, innermost last. */
  #walk: string[] = []
  #trailer = Buffer.alloc(END_OF_ARCHIVE)

  /**
   * `recordSize`: null asks exact ranges (our own mover); a size asks whole records of it (any
   * mover, the NDMP SDK's included: range-input.ts).
   */
  constructor(input: ByteSource, peer: DarRequester, targets: readonly DarTarget[], streamName: string, recordSize: number | null = null) {
    this.#in = recordSize === null ? new ExactRanges(input, peer) : new RecordRanges(input, peer, recordSize)
    this.#offsets = [...new Set(targets.map((t) => t.offset))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    this.#name = streamName
  }

  /** The reads asked of the mover and the stream bytes they brought (a widened read's lead and tail too). */
  get stats(): DarStats {
    return this.#in.stats
  }

  #ask(offset: bigint, length: bigint): void {
    this.#in.ask(offset, length)
  }

  async read(max: number): Promise<Buffer | null> {
    for (;;) {
      if (this.#head !== null) {
        const h = this.#head
        this.#head = null
        if (h.length > max) this.#head = h.subarray(max)
        return h.subarray(0, Math.min(max, h.length))
      }
      if (this.#left > 0n) {
        const want = this.#left < BigInt(Math.min(max, CHUNK)) ? Number(this.#left) : Math.min(max, CHUNK)
        const b = await exact(this.#in, want, this.#end - this.#left, this.#name)
        this.#left -= BigInt(b.length)
        return b
      }
      if (this.#walk.length > 0) {
        // The member after the last one read: still below a directory being walked?
        const m = await this.#member(this.#end, true)
        while (m !== null && this.#walk.length > 0 && !below(m.path, this.#walk[this.#walk.length - 1] ?? '')) this.#walk.pop()
        if (m === null || this.#walk.length === 0) {
          this.#walk = []
          // Read but not wanted, unless it is the next target itself.
          if (m !== null && this.#offsets[this.#next] === m.offset) {
            this.#next++
            this.#take(m)
          }
          continue
        }
        this.#take(m)
        continue
      }
      const off = this.#offsets[this.#next]
      if (off === undefined) return this.#tail(max)
      this.#next++
      if (off < this.#end) continue
      const m = await this.#member(off, false)
      if (m !== null) this.#take(m)
    }
  }

  /** Hands the member out: its headers, then its body; a directory starts a walk of its subtree. */
  #take(m: Member): void {
    this.#head = m.heads
    this.#left = m.body
    this.#end = m.dataAt + m.body
    if (m.body > 0n) this.#ask(m.dataAt, m.body)
    if (m.dir) this.#walk.push(m.path)
    // Targets inside what this member covers are done with it.
    while ((this.#offsets[this.#next] ?? this.#end) < this.#end) this.#next++
  }

  #tail(max: number): Buffer | null {
    if (this.#trailer.length === 0) return null
    const b = this.#trailer.subarray(0, Math.min(max, this.#trailer.length))
    this.#trailer = this.#trailer.subarray(b.length)
    return b
  }

  /**
   * Reads the headers of the member at `off` (its body is left to read). null: nothing more
   * there — only where `lenient` (a walk reaching the stream's end or its index); a chosen
   * offset that holds no header is a BackupFormatError.
   */
  async #member(off: bigint, lenient: boolean): Promise<Member | null> {
    const heads: Buffer[] = []
    let pos = off
    let paxSize: bigint | null = null
    let path: string | null = null
    this.#ask(pos, BigInt(BLOCK))
    let block = await exact(this.#in, BLOCK, pos, this.#name)
    for (let ext = 0; ; ext++) {
      const h = decodeHeader(block)
      if (!h.ok) {
        if (lenient && (ext === 0 || isZeroBlock(block))) return null
        throw new BackupFormatError(this.#name, pos, `direct access: no tar header at offset ${off} (${h.reason}): the file history does not match this tape`)
      }
      const t = h.fields.type
      // The stream's index (pax global headers) ends a walk.
      if (lenient && t === TYPE.paxGlobal) return null
      heads.push(block)
      pos += BigInt(BLOCK)
      const isExt = t === TYPE.paxLocal || t === TYPE.paxGlobal || t === TYPE.gnuLongName || t === TYPE.gnuLongLink
      if (!isExt) {
        const size = paxSize ?? h.fields.size
        const name = h.fields.prefix.length > 0 ? `${cText(h.fields.prefix)}/${cText(h.fields.name)}` : cText(h.fields.name)
        return { offset: off, heads: Buffer.concat(heads), path: normalPath(path ?? name), dir: t === TYPE.dir, body: NO_BODY.has(t) ? 0n : padded(size), dataAt: pos }
      }
      if (ext >= MAX_EXTENSIONS) throw new BackupFormatError(this.#name, pos, `direct access: more than ${MAX_EXTENSIONS} extension headers before one member`)
      if (h.fields.size > BigInt(MAX_PAX_BYTES)) throw new BackupFormatError(this.#name, pos, `direct access: extension header of ${h.fields.size} bytes (at most ${MAX_PAX_BYTES})`)
      const len = Number(padded(h.fields.size))
      // The extension's body and the header after it, in one read.
      this.#ask(pos, BigInt(len + BLOCK))
      const both = await exact(this.#in, len + BLOCK, pos, this.#name)
      const ebody = both.subarray(0, Number(h.fields.size))
      heads.push(both.subarray(0, len))
      if (t === TYPE.paxLocal) {
        const p = parsePax(ebody)
        const s = p.ok ? p.records.get('size') : undefined
        if (s !== undefined && /^\d{1,20}$/.test(s.toString('ascii'))) paxSize = BigInt(s.toString('ascii'))
        const pp = p.ok ? p.records.get('path') : undefined
        if (pp !== undefined) path = pp.toString('utf8')
      } else if (t === TYPE.gnuLongName) {
        path = cText(ebody)
      }
      pos += BigInt(len)
      block = both.subarray(len)
    }
  }
}
