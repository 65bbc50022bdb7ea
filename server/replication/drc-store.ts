/*
 * The replies a standby holds for its takeover (drc-ship.ts), in memory and,
 * when opened over a file, on disk too, so a standby restarted before the
 * takeover still answers a retransmission with the original reply. Bounded
 * alike in both: the latest `maxEntries` within `maxBytes`, oldest out first;
 * a key sent again replaces its entry. The file is appended to (one write per
 * REPL_DRC call, through an fd opened O_DSYNC: durable when it returns, as a
 * write and an fdatasync would be, in one trip through the thread pool instead
 * of two in a row on a sync reply's path) and rewritten from memory when it holds
 * twice the bounds, so it stays under about twice them.
 *
 * Format (README.md "Duplicate request cache file"; integers big-endian):
 * a 16-byte header — magic `TSNFSDRC`, version 1, CRC-32C of bytes 0–11 —
 * then records: key length (u32, ≤ 512), reply length (u32, ≤ 8192), CRC-32C
 * of the two lengths, the key and the reply (chained), the key bytes, the
 * reply bytes. Loading stops at the first record that is short or fails its
 * checks (a torn tail after a crash, or damage: what follows is dropped, and
 * said in the log) and writes the file again from what it kept. A file of
 * another version is not read (these are a cache, not data): it is replaced.
 */
import { constants } from 'node:fs'
import { open, readFile, stat } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { crc32c } from '../../vfs/engine/crc32c.ts'
import { REPL_MAXDRCKEY, REPL_MAXDRCREPLY } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import { writeAtomic } from './node-state.ts'

export const DRC_FILE_MAGIC = 'TSNFSDRC'
export const DRC_FILE_VERSION = 1
const HEADER = 16
const RECORD_HEAD = 12

export interface ReplyStoreOptions {
  maxEntries?: number
  maxBytes?: number
}

export interface ReplyEntry {
  key: string
  reply: Buffer
}

export class ReplyStore {
  private readonly entries = new Map<string, Buffer>()
  private bytes = 0
  private readonly maxEntries: number
  private readonly maxBytes: number
  /** The file, when the store is kept on disk. */
  private file: { path: string; fd: FileHandle; bytes: number; records: number; log: Logger } | null = null
  /** Writes to the file, one at a time in call order. */
  private tail: Promise<void> = Promise.resolve()

  constructor(o: ReplyStoreOptions = {}) {
    this.maxEntries = o.maxEntries ?? 16_384
    this.maxBytes = o.maxBytes ?? 16 * 1024 * 1024
  }

  /** A store kept in `path`: what the file holds is loaded (within the bounds), and the file written again from it. */
  static async open(path: string, log: Logger, o: ReplyStoreOptions = {}): Promise<ReplyStore> {
    const s = new ReplyStore(o)
    await s.load(path, log)
    await s.rewrite(path, log)
    return s
  }

  get size(): number {
    return this.entries.size
  }

  /** Adds to memory only (see addAll for the file). */
  add(key: string, reply: Buffer): void {
    const old = this.entries.get(key)
    if (old !== undefined) {
      this.bytes -= key.length + old.length
      this.entries.delete(key)
    }
    // Our own copy: the call's buffer is a view of the record.
    this.entries.set(key, Buffer.from(reply))
    this.bytes += key.length + reply.length
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.entries.delete(k)
      this.bytes -= k.length + v.length
    }
  }

  /** Adds the entries and, for a store on disk, resolves once they are durable in its file. */
  addAll(entries: readonly ReplyEntry[]): Promise<void> {
    const fit = entries.filter((e) => Buffer.byteLength(e.key) <= REPL_MAXDRCKEY && e.reply.length <= REPL_MAXDRCREPLY)
    for (const e of fit) this.add(e.key, e.reply)
    if (this.file === null || fit.length === 0) return Promise.resolve()
    const run = this.tail.then(() => this.append(fit))
    this.tail = run.catch(() => undefined)
    return run
  }

  /** Every entry, oldest first (the order a cache seeded with them keeps). */
  all(): [string, Buffer][] {
    return [...this.entries]
  }

  /** Forgets every entry, on disk too (the node took over: its own cache holds them now). */
  async clear(): Promise<void> {
    this.entries.clear()
    this.bytes = 0
    const f = this.file
    if (f === null) return
    await this.tail
    await this.rewrite(f.path, f.log)
  }

  async close(): Promise<void> {
    await this.tail
    await this.file?.fd.close()
    this.file = null
  }

  private async append(entries: readonly ReplyEntry[]): Promise<void> {
    const f = this.file
    if (f === null) return
    if (f.records + entries.length > 2 * this.maxEntries || f.bytes > 2 * this.maxBytes + HEADER) {
      // Memory holds the latest within the bounds (these included): the file becomes that.
      await this.rewrite(f.path, f.log)
      return
    }
    const buf = Buffer.concat(entries.map((e) => encodeRecord(e.key, e.reply)))
    // The fd is O_DSYNC (rewrite()): the write is the flush.
    await f.fd.write(buf, 0, buf.length, f.bytes)
    f.bytes += buf.length
    f.records += entries.length
  }

  private async load(path: string, log: Logger): Promise<void> {
    let size: number
    try {
      size = (await stat(path)).size
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    // Our own file stays under twice the bounds; anything far bigger is not ours to read whole.
    if (size > 4 * (this.maxBytes + this.maxEntries * RECORD_HEAD) + HEADER) {
      log.warn({ file: path, size }, 'replication: cached replies file too large; not read (it is replaced)')
      return
    }
    const b = await readFile(path)
    const why = checkHeader(b)
    if (why !== null) {
      log.warn({ file: path, why }, 'replication: cached replies file not read (it is replaced)')
      return
    }
    let at = HEADER
    while (at < b.length) {
      const r = decodeRecord(b, at)
      if (typeof r === 'string') {
        log.warn({ file: path, offset: at, why: r }, 'replication: cached replies file ends in a torn or damaged record; the entries after it are dropped')
        break
      }
      this.add(r.key, r.reply)
      at = r.next
    }
  }

  /** Writes the file from memory (temporary file, fsync, rename, directory fsync) and appends to it from then on. */
  private async rewrite(path: string, log: Logger): Promise<void> {
    const parts = [header()]
    for (const [k, v] of this.entries) parts.push(encodeRecord(k, v))
    const data = Buffer.concat(parts)
    await this.file?.fd.close()
    this.file = null
    await writeAtomic(dirname(path), basename(path), data)
    const fd = await open(path, constants.O_RDWR | constants.O_DSYNC)
    this.file = { path, fd, bytes: data.length, records: this.entries.size, log }
  }
}

function header(): Buffer {
  const h = Buffer.alloc(HEADER)
  h.write(DRC_FILE_MAGIC, 0, 'latin1')
  h.writeUInt32BE(DRC_FILE_VERSION, 8)
  h.writeUInt32BE(crc32c(h.subarray(0, 12)), 12)
  return h
}

/** null when the header is ours, else why not. Magic first, then the version, then the CRC. */
function checkHeader(b: Buffer): string | null {
  if (b.length < HEADER) return 'shorter than its header'
  if (b.toString('latin1', 0, 8) !== DRC_FILE_MAGIC) return 'not a cached replies file (magic)'
  const v = b.readUInt32BE(8)
  if (v !== DRC_FILE_VERSION) return `format version ${String(v)}, this tsnfs reads version ${String(DRC_FILE_VERSION)} only`
  if (b.readUInt32BE(12) !== crc32c(b.subarray(0, 12))) return 'header CRC mismatch'
  return null
}

export function encodeRecord(key: string, reply: Buffer): Buffer {
  const k = Buffer.from(key)
  const r = Buffer.alloc(RECORD_HEAD + k.length + reply.length)
  r.writeUInt32BE(k.length, 0)
  r.writeUInt32BE(reply.length, 4)
  k.copy(r, RECORD_HEAD)
  reply.copy(r, RECORD_HEAD + k.length)
  r.writeUInt32BE(crc32c(r.subarray(RECORD_HEAD), crc32c(r.subarray(0, 8))), 8)
  return r
}

/** The record at `at`, or why it is not one (lengths are checked against the caps before anything is read by them). */
function decodeRecord(b: Buffer, at: number): { key: string; reply: Buffer; next: number } | string {
  if (b.length - at < RECORD_HEAD) return 'short record head'
  const kl = b.readUInt32BE(at)
  const rl = b.readUInt32BE(at + 4)
  if (kl === 0 || kl > REPL_MAXDRCKEY || rl > REPL_MAXDRCREPLY) return `lengths out of range (key ${String(kl)}, reply ${String(rl)})`
  const end = at + RECORD_HEAD + kl + rl
  if (end > b.length) return 'short record'
  if (b.readUInt32BE(at + 8) !== crc32c(b.subarray(at + RECORD_HEAD, end), crc32c(b.subarray(at, at + 8)))) return 'record CRC mismatch'
  return { key: b.toString('utf8', at + RECORD_HEAD, at + RECORD_HEAD + kl), reply: b.subarray(at + RECORD_HEAD + kl, end), next: end }
}
