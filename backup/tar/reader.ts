/*
 * A streaming pax tar reader: ustar headers, pax 'x'/'g' extended headers, GNU 'L'/'K' long names
 * and GNU sparse files (pax formats 1.0 and 0.1). Every fault is a BackupFormatError naming the
 * stream and the byte offset; the members before it have already been handed out.
 */
import { BackupFormatError } from '../types.ts'
import type { ByteSource } from '../types.ts'
import type { Timespec } from '../../vfs/types.ts'
import { BLOCK, TYPE, decodeHeader, isZeroBlock, padded } from './header.ts'
import type { HeaderFields } from './header.ts'
import { MAX_PAX_BYTES, parsePax, parsePaxTime } from './pax.ts'
import type { TarType } from './writer.ts'

export interface TarEntry {
  /** Offset of the member's first header (its pax header, if any). */
  offset: bigint
  /** Without a trailing '/'. */
  path: string
  type: TarType | 'other'
  mode: number
  uid: number
  gid: number
  /** The file's real size (for a sparse file, with its holes). */
  size: bigint
  mtime: Timespec
  atime: Timespec | null
  ctime: Timespec | null
  linkTarget: string
  rdev: { major: number; minor: number }
  sparse: Array<{ offset: bigint; length: bigint }> | null
  /** The member's pax records (after the global ones), e.g. GNU.dumpdir. */
  pax: Map<string, Buffer>
}

/** Longest sparse map we accept (regions); a larger one is refused before allocation. */
const MAX_SPARSE_REGIONS = 1_000_000
const READ_CHUNK = 1024 * 1024

/** A ByteSource read in exact amounts, with the byte position kept. */
class Input {
  readonly #src: ByteSource
  #pending: Buffer | null = null
  #eof = false
  pos = 0n

  constructor(src: ByteSource) {
    this.#src = src
  }

  /** Up to `n` bytes; fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = []
    let have = 0
    while (have < n) {
      let b = this.#pending
      this.#pending = null
      if (b === null) {
        if (this.#eof) break
        b = await this.#src.read(Math.max(n - have, 64 * 1024))
        if (b === null) {
          this.#eof = true
          break
        }
        if (b.length === 0) continue
      }
      const take = Math.min(b.length, n - have)
      parts.push(take === b.length ? b : b.subarray(0, take))
      if (take < b.length) this.#pending = b.subarray(take)
      have += take
    }
    this.pos += BigInt(have)
    return parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts, have)
  }
}

function typeOf(flag: number): TarType | 'other' {
  switch (flag) {
    case TYPE.file:
    case TYPE.oldFile:
    case TYPE.contiguous:
      return 'file'
    case TYPE.hardLink:
      return 'hardlink'
    case TYPE.symlink:
      return 'symlink'
    case TYPE.char:
      return 'char'
    case TYPE.block:
      return 'block'
    case TYPE.dir:
      return 'dir'
    case TYPE.fifo:
      return 'fifo'
    default:
      return 'other'
  }
}

/** Our relative form: no leading './' or '/', no trailing '/', '' for the root. */
function normalPath(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.')
  return parts.join('/')
}

export class TarReader {
  readonly #in: Input
  readonly #name: string
  /** Stored body bytes of the current member not yet read, and its padding. */
  #left = 0n
  #pad = 0n
  #globals = new Map<string, Buffer>()
  /** Every global header's `comment`, in order (our index spans several). */
  readonly comments: Buffer[] = []
  #done = false

  constructor(src: ByteSource, sourceName: string) {
    this.#in = new Input(src)
    this.#name = sourceName
  }

  /** Records of the pax global headers seen so far (our index travels in the last one). */
  get globals(): Map<string, Buffer> {
    return this.#globals
  }

  get position(): bigint {
    return this.#in.pos
  }

  #fail(at: bigint, msg: string): never {
    throw new BackupFormatError(this.#name, at, msg)
  }

  async #exact(n: number, what: string): Promise<Buffer> {
    const at = this.#in.pos
    const b = await this.#in.read(n)
    if (b.length < n) this.#fail(at + BigInt(b.length), `truncated: the stream ends inside ${what}`)
    return b
  }

  async #skip(n: bigint, what: string): Promise<void> {
    while (n > 0n) {
      const step = n > BigInt(READ_CHUNK) ? READ_CHUNK : Number(n)
      await this.#exact(step, what)
      n -= BigInt(step)
    }
  }

  /** A special member's whole body (pax header, long name), capped before allocation. */
  async #smallBody(size: bigint, at: bigint, what: string): Promise<Buffer> {
    if (size > BigInt(MAX_PAX_BYTES)) this.#fail(at, `${what} of ${size} bytes exceeds the ${MAX_PAX_BYTES}-byte limit`)
    const b = await this.#exact(Number(size), what)
    await this.#skip(padded(size) - size, `${what} padding`)
    return b
  }

  /** The next member, or null after the end-of-archive blocks. Unread body bytes are skipped. */
  async next(): Promise<TarEntry | null> {
    if (this.#done) return null
    await this.#skip(this.#left + this.#pad, 'a member body')
    this.#left = 0n
    this.#pad = 0n
    const start = this.#in.pos
    let pax = new Map<string, Buffer>()
    let longName: Buffer | null = null
    let longLink: Buffer | null = null
    for (;;) {
      const at = this.#in.pos
      const block = await this.#in.read(BLOCK)
      if (block.length === 0 && at === start) this.#fail(at, 'truncated: the stream ends without the end-of-archive blocks')
      if (block.length < BLOCK) this.#fail(at + BigInt(block.length), 'truncated: the stream ends inside a header block')
      if (isZeroBlock(block)) {
        if (at !== start) this.#fail(at, 'a zero block follows an extended header')
        // One zero block is enough for us; a second one is read when present, never required.
        const second = await this.#in.read(BLOCK)
        if (second.length === BLOCK && !isZeroBlock(second)) this.#fail(at + BigInt(BLOCK), 'a header follows a single zero block')
        this.#done = true
        return null
      }
      const h = decodeHeader(block)
      if (!h.ok) this.#fail(at, h.reason)
      const f = h.fields
      if (f.type === TYPE.paxLocal || f.type === TYPE.paxGlobal) {
        const body = await this.#smallBody(f.size, at, 'a pax extended header')
        const parsed = parsePax(body)
        if (!parsed.ok) this.#fail(at + BigInt(BLOCK + parsed.at), parsed.reason)
        if (f.type === TYPE.paxGlobal) {
          for (const [k, v] of parsed.records) {
            if (k === 'comment') this.comments.push(v)
            else this.#globals.set(k, v)
          }
          if (pax.size === 0 && longName === null) return this.next() // a global header alone is no member
        } else {
          for (const [k, v] of parsed.records) pax.set(k, v)
        }
        continue
      }
      if (f.type === TYPE.gnuLongName || f.type === TYPE.gnuLongLink) {
        const body = await this.#smallBody(f.size, at, 'a GNU long name')
        const end = body.indexOf(0)
        const v = Buffer.from(end === -1 ? body : body.subarray(0, end))
        if (f.type === TYPE.gnuLongName) longName = v
        else longLink = v
        continue
      }
      pax = new Map([...this.#globals, ...pax])
      return this.#entry(start, at, f, pax, longName, longLink)
    }
  }

  async #entry(
    start: bigint,
    at: bigint,
    f: HeaderFields,
    pax: Map<string, Buffer>,
    longName: Buffer | null,
    longLink: Buffer | null,
  ): Promise<TarEntry> {
    const str = (k: string): string | undefined => pax.get(k)?.toString('utf8')
    const num = (k: string, fallback: bigint): bigint => {
      const v = str(k)
      if (v === undefined) return fallback
      if (!/^\d{1,20}$/.test(v)) this.#fail(at, `pax record ${k}='${v}' is not a decimal number`)
      return BigInt(v)
    }
    const time = (k: string): Timespec | null => {
      const v = str(k)
      if (v === undefined) return null
      const t = parsePaxTime(v)
      if (t === null) this.#fail(at, `pax record ${k}='${v}' is not a time`)
      return t
    }
    const ustarPath = f.prefix.length > 0 ? Buffer.concat([f.prefix, Buffer.from('/'), f.name]) : f.name
    let path = str('path') ?? (longName ?? ustarPath).toString('utf8')
    const stored = num('size', f.size)
    let size = stored
    let sparse: TarEntry['sparse'] = null
    const type = typeOf(f.type)
    this.#left = type === 'file' || type === 'other' ? stored : 0n
    if (type === 'dir' && stored > 0n) this.#left = stored // GNU dumpdir bodies of old formats: skipped
    this.#pad = padded(this.#left) - this.#left
    if (type === 'file' && str('GNU.sparse.major') === '1') {
      path = str('GNU.sparse.name') ?? path
      size = num('GNU.sparse.realsize', 0n)
      sparse = await this.#sparseMap10(at)
    } else if (type === 'file' && pax.has('GNU.sparse.map')) {
      path = str('GNU.sparse.name') ?? path
      size = num('GNU.sparse.size', 0n)
      sparse = this.#sparseMap01(at, str('GNU.sparse.map') ?? '')
    }
    if (sparse !== null) {
      let end = 0n
      for (const r of sparse) {
        if (r.offset < end || r.offset + r.length > size) this.#fail(at, `sparse map region ${r.offset}+${r.length} is out of order or beyond ${size}`)
        end = r.offset + r.length
      }
    }
    const link = str('linkpath') ?? (longLink ?? f.linkname).toString('utf8')
    return {
      offset: start,
      path: normalPath(path),
      type,
      mode: f.mode,
      uid: Number(num('uid', BigInt(f.uid))),
      gid: Number(num('gid', BigInt(f.gid))),
      size,
      mtime: time('mtime') ?? { sec: f.mtime, nsec: 0 },
      atime: time('atime'),
      ctime: time('ctime'),
      // A hard link names a member ('./a' and 'a' alike); a symlink's target is kept as written.
      linkTarget: type === 'hardlink' ? normalPath(link) : link,
      rdev: { major: f.devmajor, minor: f.devminor },
      sparse,
      pax,
    }
  }

  /** GNU sparse 1.0: decimal lines at the start of the body (count, then offset/length pairs), block padded. */
  async #sparseMap10(at: bigint): Promise<Array<{ offset: bigint; length: bigint }>> {
    const lines: string[] = []
    let text = ''
    let used = 0n
    let want = -1
    while (want < 0 || lines.length < 1 + want * 2) {
      if (used >= this.#left) this.#fail(at, 'the sparse map runs past the member body')
      const blk = await this.#exact(BLOCK, 'a sparse map')
      used += BigInt(BLOCK)
      text += blk.toString('ascii')
      const parts = text.split('\n')
      text = parts.pop() ?? ''
      for (const p of parts) {
        if (!/^\d{1,20}$/.test(p)) this.#fail(at, `sparse map line '${p.slice(0, 40)}' is not a number`)
        lines.push(p)
        if (lines.length === 1) {
          want = Number(p)
          if (want > MAX_SPARSE_REGIONS) this.#fail(at, `sparse map of ${want} regions exceeds ${MAX_SPARSE_REGIONS}`)
        }
        if (want >= 0 && lines.length === 1 + want * 2) break
      }
      if (want >= 0 && lines.length >= 1 + want * 2) break
    }
    this.#left -= used
    this.#pad = padded(this.#left) - this.#left
    const map: Array<{ offset: bigint; length: bigint }> = []
    for (let i = 0; i < want; i++) map.push({ offset: BigInt(lines[1 + 2 * i] ?? 0), length: BigInt(lines[2 + 2 * i] ?? 0) })
    return map
  }

  #sparseMap01(at: bigint, text: string): Array<{ offset: bigint; length: bigint }> {
    const nums = text === '' ? [] : text.split(',')
    if (nums.length % 2 !== 0 || nums.length > MAX_SPARSE_REGIONS * 2 || !nums.every((n) => /^\d{1,20}$/.test(n))) {
      this.#fail(at, 'pax record GNU.sparse.map is not a list of offset,length pairs')
    }
    const map: Array<{ offset: bigint; length: bigint }> = []
    for (let i = 0; i < nums.length; i += 2) map.push({ offset: BigInt(nums[i] ?? 0), length: BigInt(nums[i + 1] ?? 0) })
    return map
  }

  /** The stored body of the current member, in chunks of at most `max`; null at its end. */
  async readBody(max: number): Promise<Buffer | null> {
    if (this.#left === 0n) return null
    const n = this.#left > BigInt(max) ? max : Number(this.#left)
    const b = await this.#exact(n, 'a member body')
    this.#left -= BigInt(n)
    return b
  }

  /**
   * A regular file's data with its offsets: sparse regions land where the map says, the holes
   * between them are never produced.
   */
  async *fileData(e: TarEntry, max = READ_CHUNK): AsyncGenerator<{ offset: bigint; data: Buffer }> {
    const regions = e.sparse ?? [{ offset: 0n, length: this.#left }]
    for (const r of regions) {
      let pos = r.offset
      let left = r.length
      while (left > 0n) {
        const n = left > BigInt(max) ? max : Number(left)
        if (BigInt(n) > this.#left) this.#fail(this.#in.pos, 'the sparse map claims more data than the member holds')
        const b = await this.#exact(n, 'a member body')
        this.#left -= BigInt(n)
        yield { offset: pos, data: b }
        pos += BigInt(n)
        left -= BigInt(n)
      }
    }
  }
}
