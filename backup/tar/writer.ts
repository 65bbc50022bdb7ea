/*
 * A streaming pax tar writer. Each member is an optional pax extended header ('x'), a ustar header,
 * then the body padded to 512 bytes; the archive ends with two zero blocks (POSIX.1-2001 pax).
 * Small writes are gathered into big chunks before they reach the sink; large data passes through.
 */
import type { ByteSink } from '../types.ts'
import type { Timespec } from '../../vfs/types.ts'
import { BLOCK, TYPE, USTAR_LIMIT, encodeHeader, padded, splitUstarPath } from './header.ts'
import { paxRecord, paxTime } from './pax.ts'

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'

export interface TarMember {
  /** '/'-separated, relative; a directory's path gets its trailing '/' here. */
  path: string
  type: TarType
  mode: number
  uid: number
  gid: number
  /** Body bytes of a regular file (its real size for a sparse one). */
  size: bigint
  atime: Timespec
  mtime: Timespec
  ctime: Timespec
  /** Symlink target, or the first stored name of a hard link. */
  linkTarget?: string
  rdev?: { major: number; minor: number }
  /** Data regions of a sparse file (GNU sparse format 1.0); absent for a dense one. */
  sparse?: Array<{ offset: bigint; length: bigint }>
  /** More pax records, e.g. GNU.dumpdir. */
  extra?: Array<[string, Buffer | string]>
}

const CHUNK = 1024 * 1024
const ZERO = Buffer.alloc(BLOCK * 2)

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c > 0x7e || c < 0x20) return false
  return true
}

/** The sparse map body of GNU format 1.0: count, then offset/length lines, padded to a block. */
export function sparseMapBody(map: Array<{ offset: bigint; length: bigint }>): Buffer {
  const text = [String(map.length), ...map.flatMap((r) => [String(r.offset), String(r.length)])].join('\n') + '\n'
  const b = Buffer.alloc(Number(padded(BigInt(Buffer.byteLength(text)))))
  b.write(text, 0, 'ascii')
  return b
}

export class TarWriter {
  readonly #sink: ByteSink
  #buf: Buffer = Buffer.allocUnsafe(CHUNK)
  #used = 0
  #offset = 0n
  /** Body bytes still owed by the current member. */
  #owed = 0n
  #bodyLen = 0n
  #seq = 0
  #inFlight: Promise<void> = Promise.resolve()

  constructor(sink: ByteSink) {
    this.#sink = sink
  }

  /** Bytes written so far (the uncompressed stream offset). */
  get offset(): bigint {
    return this.#offset
  }

  /** `release`: called once `b` is no longer needed (copied, or accepted by the sink). */
  async #put(b: Buffer, release?: () => void): Promise<void> {
    this.#offset += BigInt(b.length)
    if (b.length >= CHUNK / 2) {
      await this.#flush()
      await this.#send(b, release)
      return
    }
    if (this.#used + b.length > CHUNK) await this.#flush()
    b.copy(this.#buf, this.#used)
    this.#used += b.length
    release?.()
  }

  /**
   * Hands a chunk to the sink, one write at a time, without waiting for it to be accepted: the
   * caller reads and hashes the next chunk meanwhile. The next send (or drain) waits for it, so
   * the sink still paces us and never sees two writes at once.
   */
  async #send(b: Buffer, release?: () => void): Promise<void> {
    await this.#inFlight
    const w = this.#sink.write(b)
    this.#inFlight = w
    // A backend's loaned buffer goes back once the sink has taken the bytes (ReadResult.release).
    w.then(release, release).catch(() => {})
    w.catch(() => {}) // surfaced by the next await of #inFlight
  }

  async #flush(): Promise<void> {
    if (this.#used === 0) return
    const out = this.#buf.subarray(0, this.#used)
    // The sink may keep the chunk after write() resolves: never reuse a buffer handed over.
    this.#buf = Buffer.allocUnsafe(CHUNK)
    this.#used = 0
    await this.#send(out)
  }

  /** Writes the member's headers; returns the offset of its first header. Then send the body with data(). */
  async begin(m: TarMember): Promise<bigint> {
    if (this.#owed !== 0n) throw new Error(`tar writer: previous member is ${this.#owed} bytes short`)
    const start = this.#offset
    const recs: Buffer[] = []
    let path = Buffer.from(m.path, 'utf8')
    let size = m.type === 'file' ? m.size : 0n
    let sparseMap: Buffer | null = null
    if (m.type === 'file' && m.sparse !== undefined) {
      // GNU sparse 1.0: the real name and size in pax records, a stand-in name in the ustar header.
      sparseMap = sparseMapBody(m.sparse)
      let stored = 0n
      for (const r of m.sparse) stored += r.length
      recs.push(paxRecord('GNU.sparse.major', '1'), paxRecord('GNU.sparse.minor', '0'))
      recs.push(paxRecord('GNU.sparse.name', path), paxRecord('GNU.sparse.realsize', String(m.size)))
      const slash = m.path.lastIndexOf('/')
      path = Buffer.from(`${m.path.slice(0, slash + 1)}GNUSparseFile.0/${m.path.slice(slash + 1)}`, 'utf8')
      size = BigInt(sparseMap.length) + stored
    }
    const split = isAscii(path) ? splitUstarPath(path) : null
    if (split === null) recs.push(paxRecord('path', path))
    const link = m.linkTarget === undefined ? Buffer.alloc(0) : Buffer.from(m.linkTarget, 'utf8')
    if (link.length > 100 || !isAscii(link)) recs.push(paxRecord('linkpath', link))
    if (size > USTAR_LIMIT.size) recs.push(paxRecord('size', String(size)))
    if (m.uid > USTAR_LIMIT.id) recs.push(paxRecord('uid', String(m.uid)))
    if (m.gid > USTAR_LIMIT.id) recs.push(paxRecord('gid', String(m.gid)))
    recs.push(paxRecord('mtime', paxTime(m.mtime)), paxRecord('atime', paxTime(m.atime)), paxRecord('ctime', paxTime(m.ctime)))
    for (const [k, v] of m.extra ?? []) recs.push(paxRecord(k, v))
    const pax = Buffer.concat(recs)
    const base = Buffer.from(m.path.replace(/\/$/, '').split('/').pop() ?? '', 'utf8')
    const paxName = Buffer.concat([Buffer.from(`PaxHeaders.${this.#seq++ % 1_000_000}/`), base.subarray(Math.max(0, base.length - 80))])
    await this.#put(this.#header(paxName, TYPE.paxLocal, 0o644, 0, 0, BigInt(pax.length), m.mtime.sec, Buffer.alloc(0)))
    await this.#put(pax)
    await this.#pad(BigInt(pax.length))
    const name = split ?? { prefix: Buffer.alloc(0), name: path.subarray(0, 100) }
    const type = { file: TYPE.file, dir: TYPE.dir, symlink: TYPE.symlink, hardlink: TYPE.hardLink, char: TYPE.char, block: TYPE.block, fifo: TYPE.fifo }[m.type]
    await this.#put(
      encodeHeader({
        name: name.name,
        prefix: name.prefix,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        size,
        mtime: m.mtime.sec,
        type,
        linkname: link.subarray(0, 100),
        uname: '',
        gname: '',
        devmajor: m.rdev?.major ?? 0,
        devminor: m.rdev?.minor ?? 0,
      }),
    )
    this.#owed = size
    this.#bodyLen = size
    if (sparseMap !== null) await this.data(sparseMap)
    return start
  }

  #header(name: Buffer, type: number, mode: number, uid: number, gid: number, size: bigint, mtime: number, link: Buffer): Buffer {
    return encodeHeader({ name, prefix: Buffer.alloc(0), mode, uid, gid, size, mtime, type, linkname: link, uname: '', gname: '', devmajor: 0, devminor: 0 })
  }

  async #pad(n: bigint): Promise<void> {
    const pad = Number(padded(n) - n)
    if (pad > 0) await this.#put(ZERO.subarray(0, pad))
  }

  /**
   * Body bytes of the current member, in order. More than it declared is a bug of the caller.
   * `release` is called once the writer no longer needs `b` (a backend's loan may then be reused).
   */
  async data(b: Buffer, release?: () => void): Promise<void> {
    if (BigInt(b.length) > this.#owed) {
      release?.()
      throw new Error(`tar writer: ${b.length} bytes exceed the member's remaining ${this.#owed}`)
    }
    this.#owed -= BigInt(b.length)
    await this.#put(b, release)
    if (this.#owed === 0n) await this.#pad(this.#bodyLen)
  }

  /** Completes a member whose source came up short (a file that shrank while read): zero fill. */
  async fillRest(): Promise<bigint> {
    const short = this.#owed
    while (this.#owed > 0n) {
      const n = this.#owed > BigInt(CHUNK) ? CHUNK : Number(this.#owed)
      await this.data(Buffer.alloc(n))
    }
    return short
  }

  /** A pax global header ('g'); we put our index in its `comment` record, which every reader skips. */
  async global(records: Buffer): Promise<bigint> {
    const start = this.#offset
    await this.#put(this.#header(Buffer.from('GlobalHead.tsnfs'), TYPE.paxGlobal, 0o644, 0, 0, BigInt(records.length), 0, Buffer.alloc(0)))
    await this.#put(records)
    await this.#pad(BigInt(records.length))
    return start
  }

  /** Two zero blocks end the archive; then everything buffered goes out. */
  async finish(): Promise<void> {
    await this.#put(ZERO)
    await this.#flush()
    await this.#inFlight
  }
}
