/*
 * The persistent index `inode -> { parent inode, name, generation }` that
 * turns a FileRef back into a path without a volatile handle map: resolving
 * walks the parent links up to the export root. A rename through the
 * backend changes one entry, so handles of the file and everything below it
 * keep working.
 *
 * On disk (in the state directory): `index.snap`, a snapshot, and
 * `index.log`, the changes since, appended in batches (at most every 100 ms,
 * and on flush(), which the backend calls before it acknowledges FILE_SYNC,
 * DATA_SYNC or COMMIT). Both start with a header naming the export root's
 * inode and an epoch; a log whose epoch is not the snapshot's predates the
 * snapshot and is ignored. A torn last record (SIGKILL mid-append) is cut
 * off at load. Losing recent entries is harmless: resolution falls back to a
 * search of the tree and repairs the index.
 *
 * Memory: one Map entry per indexed inode, roughly 150-200 bytes each, so a
 * million files cost ~200 MB.
 */
import fs from 'node:fs'
import path from 'node:path'
import { closeQuietly, fdatasync, fsync, open, writeAll } from './sys.ts'

export interface IndexEntry {
  readonly parent: bigint
  readonly name: Buffer
  readonly gen: number
}

const MAGIC = Buffer.from('TSNFSIX1')
const HEADER = 8 + 8 + 8 + 4
const OP_SET = 1
const OP_DEL = 2
const FLUSH_DELAY_MS = 100
/** Compact when the log holds this many records and more than twice the live entries. */
const COMPACT_MIN_RECORDS = 200_000

function header(epoch: bigint, rootIno: bigint, rootGen: number): Buffer {
  const h = Buffer.alloc(HEADER)
  MAGIC.copy(h, 0)
  h.writeBigUInt64BE(epoch, 8)
  h.writeBigUInt64BE(rootIno, 16)
  h.writeUInt32BE(rootGen, 24)
  return h
}

function setRecord(ino: bigint, e: IndexEntry): Buffer {
  const r = Buffer.alloc(1 + 8 + 8 + 4 + 1 + e.name.length)
  r[0] = OP_SET
  r.writeBigUInt64BE(ino, 1)
  r.writeBigUInt64BE(e.parent, 9)
  r.writeUInt32BE(e.gen, 17)
  r[21] = e.name.length
  e.name.copy(r, 22)
  return r
}

function delRecord(ino: bigint): Buffer {
  const r = Buffer.alloc(9)
  r[0] = OP_DEL
  r.writeBigUInt64BE(ino, 1)
  return r
}

interface Parsed { epoch: bigint; rootIno: bigint; rootGen: number; validLength: number }

/** Applies the records of one file to `map`; stops at the first torn or invalid record. */
function replay(buf: Buffer, map: Map<bigint, IndexEntry>): Parsed | null {
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) return null
  const parsed = { epoch: buf.readBigUInt64BE(8), rootIno: buf.readBigUInt64BE(16), rootGen: buf.readUInt32BE(24), validLength: HEADER }
  let off = HEADER
  while (off < buf.length) {
    const op = buf[off]
    if (op === OP_DEL && off + 9 <= buf.length) {
      map.delete(buf.readBigUInt64BE(off + 1))
      off += 9
    } else if (op === OP_SET && off + 22 <= buf.length) {
      const len = buf[off + 21] ?? 0
      if (len === 0 || off + 22 + len > buf.length) break
      const name = Buffer.from(buf.subarray(off + 22, off + 22 + len))
      if (name.includes(0x2f) || name.includes(0)) break
      map.set(buf.readBigUInt64BE(off + 1), { parent: buf.readBigUInt64BE(off + 9), name, gen: buf.readUInt32BE(off + 17) })
      off += 22 + len
    } else {
      break
    }
    parsed.validLength = off
  }
  return parsed
}

function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null
    throw err
  }
}

export class HandleIndex {
  readonly #map = new Map<bigint, IndexEntry>()
  readonly #snapFile: string
  readonly #logFile: string
  readonly #rootIno: bigint
  /** The root's generation as persisted (used when the file system keeps no birth time). */
  readonly rootGen: number
  #epoch = 0n
  #logFd: number
  #logRecords = 0
  #pending: Buffer[] = []
  #timer: NodeJS.Timeout | null = null
  #chain: Promise<void> = Promise.resolve()
  #failed: unknown = null

  /** Loads the index synchronously (backends are made synchronously). `rootGen` null: none known yet. */
  constructor(stateDir: string, rootIno: bigint, rootGen: number | null, freshGen: () => number) {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    this.#snapFile = path.join(stateDir, 'index.snap')
    this.#logFile = path.join(stateDir, 'index.log')
    this.#rootIno = rootIno
    const snap = readIfExists(this.#snapFile)
    const log = readIfExists(this.#logFile)
    let gen = rootGen
    const matches = (p: Parsed | null): p is Parsed => p !== null && p.rootIno === rootIno && (rootGen === null || p.rootGen === rootGen)
    const s = snap === null ? null : replay(snap, this.#map)
    if (snap !== null && !matches(s)) this.#map.clear()
    else if (s !== null) {
      this.#epoch = s.epoch
      gen ??= s.rootGen
    }
    let logOk = false
    if (log !== null) {
      const scratch = new Map(this.#map)
      const l = replay(log, scratch)
      if (matches(l) && (s === null ? true : l.epoch === this.#epoch)) {
        for (const [k, v] of scratch) this.#map.set(k, v)
        for (const k of this.#map.keys()) if (!scratch.has(k)) this.#map.delete(k)
        this.#epoch = l.epoch
        gen ??= l.rootGen
        logOk = true
        if (l.validLength < log.length) fs.truncateSync(this.#logFile, l.validLength)
      }
    }
    this.rootGen = gen ?? freshGen()
    if (!logOk) fs.writeFileSync(this.#logFile, header(this.#epoch, rootIno, this.rootGen), { mode: 0o600 })
    this.#logFd = fs.openSync(this.#logFile, fs.constants.O_WRONLY | fs.constants.O_APPEND)
  }

  get size(): number {
    return this.#map.size
  }

  get(ino: bigint): IndexEntry | undefined {
    return this.#map.get(ino)
  }

  set(ino: bigint, parent: bigint, name: Buffer, gen: number): void {
    if (ino === this.#rootIno) return
    const cur = this.#map.get(ino)
    if (cur !== undefined && cur.parent === parent && cur.gen === gen && cur.name.equals(name)) return
    // Our own copy: the name may be a view into a request buffer.
    const e = { parent, name: Buffer.from(name), gen }
    this.#map.set(ino, e)
    this.#append(setRecord(ino, e))
  }

  delete(ino: bigint): void {
    if (this.#map.delete(ino)) this.#append(delRecord(ino))
  }

  /** Writes and syncs every change made so far. */
  flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    const batch = this.#pending
    this.#pending = []
    const run = this.#chain.then(() => this.#write(batch))
    // The chain itself never rejects, so one failed flush does not poison later ones.
    this.#chain = run.catch((err: unknown) => {
      this.#failed = err
    })
    return run
  }

  async close(): Promise<void> {
    await this.flush().catch(() => undefined)
    await closeQuietly(this.#logFd)
  }

  /** The last background flush failure, for diagnostics. */
  get lastError(): unknown {
    return this.#failed
  }

  #append(rec: Buffer): void {
    this.#pending.push(rec)
    this.#timer ??= setTimeout(() => {
      this.#timer = null
      void this.flush().catch(() => undefined)
    }, FLUSH_DELAY_MS).unref()
  }

  async #write(batch: Buffer[]): Promise<void> {
    if (batch.length > 0) {
      await writeAll(this.#logFd, Buffer.concat(batch))
      this.#logRecords += batch.length
    }
    await fdatasync(this.#logFd)
    if (this.#logRecords > COMPACT_MIN_RECORDS && this.#logRecords > 2 * this.#map.size) await this.#compact()
  }

  /** Snapshot of the whole map, then an empty log of the new epoch. Runs inside the flush chain. */
  async #compact(): Promise<void> {
    const epoch = this.#epoch + 1n
    const parts: Buffer[] = [header(epoch, this.#rootIno, this.rootGen)]
    for (const [ino, e] of this.#map) parts.push(setRecord(ino, e))
    // Changes made from here on are newer than the snapshot: they go to the new log.
    const snapTmp = `${this.#snapFile}.tmp`
    const logTmp = `${this.#logFile}.tmp`
    await writeDurably(snapTmp, Buffer.concat(parts))
    await fs.promises.rename(snapTmp, this.#snapFile)
    await writeDurably(logTmp, header(epoch, this.#rootIno, this.rootGen))
    await fs.promises.rename(logTmp, this.#logFile)
    await syncDir(path.dirname(this.#logFile))
    const old = this.#logFd
    this.#logFd = fs.openSync(this.#logFile, fs.constants.O_WRONLY | fs.constants.O_APPEND)
    this.#epoch = epoch
    this.#logRecords = 0
    await closeQuietly(old)
  }
}

async function writeDurably(file: string, data: Buffer): Promise<void> {
  const fd = await open(Buffer.from(file), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600)
  try {
    await writeAll(fd, data)
    await fsync(fd)
  } finally {
    await closeQuietly(fd)
  }
}

async function syncDir(dir: string): Promise<void> {
  const fd = await open(Buffer.from(dir), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    await fsync(fd)
  } finally {
    await closeQuietly(fd)
  }
}
