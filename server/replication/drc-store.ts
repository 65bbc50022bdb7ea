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
 * Each entry carries the change it describes (export id, seq; seq 0: none, or
 * a change known durable when it came). A REPL_DRC_HELD entry is written as it
 * arrives, while its change may still be on the way (drc-held.ts), so an entry
 * is *usable* only once the standby's durable position in its export has
 * reached its seq (`durable`): all() gives only those, a load drops the others
 * (their change never became durable before the restart), and settle() drops
 * them when the positions are about to count another primary's log.
 *
 * Format: drc-file-format.ts. Loading stops at the first record that is short
 * or fails its checks (a torn tail after a crash, or damage: what follows is
 * dropped, and said in the log) and writes the file again from what it kept
 * (version 1 files so become version 2). A file of another version is not read
 * (these are a cache, not data): it is replaced.
 */
import { constants } from 'node:fs'
import { open, readFile, stat } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { REPL_MAXDRCKEY, REPL_MAXDRCREPLY } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import { DRC_HEADER as HEADER, DRC_RECORD_HEAD as RECORD_HEAD, checkDrcHeader, decodeRecord, drcHeader, encodeRecord } from './drc-file-format.ts'
import { writeAtomic } from './node-state.ts'

export { DRC_FILE_MAGIC, DRC_FILE_VERSION, encodeRecord, encodeRecordV1 } from './drc-file-format.ts'

export interface ReplyStoreOptions {
  maxEntries?: number
  maxBytes?: number
  /**
   * The standby's durable position in an export: an entry of a higher seq is not usable (its
   * change is not durable here). Without it, only entries of seq 0 are.
   */
  durable?: (exportId: number) => bigint
}

export interface ReplyEntry {
  key: string
  reply: Buffer
  /** The change the reply describes; seq 0 (the default): none to wait for. */
  exportId?: number
  seq?: bigint
}

interface Held {
  reply: Buffer
  exportId: number
  seq: bigint
}

export class ReplyStore {
  private readonly entries = new Map<string, Held>()
  private bytes = 0
  private readonly maxEntries: number
  private readonly maxBytes: number
  private readonly durable: (exportId: number) => bigint
  /** The file, when the store is kept on disk. */
  private file: { path: string; fd: FileHandle; bytes: number; records: number; log: Logger } | null = null
  /** Writes to the file, one at a time in call order. */
  private tail: Promise<void> = Promise.resolve()

  constructor(o: ReplyStoreOptions = {}) {
    this.maxEntries = o.maxEntries ?? 16_384
    this.maxBytes = o.maxBytes ?? 16 * 1024 * 1024
    this.durable = o.durable ?? (() => 0n)
  }

  /**
   * A store kept in `path`: what the file holds is loaded (within the bounds), entries whose
   * change is not durable here dropped (a restart: that change never came, or came too late to
   * be flushed), and the file written again from what is left.
   */
  static async open(path: string, log: Logger, o: ReplyStoreOptions = {}): Promise<ReplyStore> {
    const s = new ReplyStore(o)
    await s.load(path, log)
    const { dropped } = s.settleInMemory()
    if (dropped > 0) log.info({ file: path, dropped }, 'replication: cached replies whose change is not durable here dropped')
    await s.rewrite(path, log)
    return s
  }

  /** Entries held, usable or not. */
  get size(): number {
    return this.entries.size
  }

  /** Adds to memory only (see addAll for the file). */
  add(key: string, reply: Buffer, exportId = 0, seq = 0n): void {
    const old = this.entries.get(key)
    if (old !== undefined) {
      this.bytes -= key.length + old.reply.length
      this.entries.delete(key)
    }
    // Our own copy: the call's buffer is a view of the record.
    this.entries.set(key, { reply: Buffer.from(reply), exportId, seq })
    this.bytes += key.length + reply.length
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.entries.delete(k)
      this.bytes -= k.length + v.reply.length
    }
  }

  /** Adds the entries and, for a store on disk, resolves once they are durable in its file. */
  addAll(entries: readonly ReplyEntry[]): Promise<void> {
    const fit = entries.filter((e) => Buffer.byteLength(e.key) <= REPL_MAXDRCKEY && e.reply.length <= REPL_MAXDRCREPLY)
    for (const e of fit) this.add(e.key, e.reply, e.exportId, e.seq)
    if (this.file === null || fit.length === 0) return Promise.resolve()
    const run = this.tail.then(() => this.append(fit))
    this.tail = run.catch(() => undefined)
    return run
  }

  /** Every usable entry (its change durable here, or none), oldest first (the order a cache seeded with them keeps). */
  all(): [string, Buffer][] {
    const out: [string, Buffer][] = []
    for (const [k, v] of this.entries) if (this.usable(v)) out.push([k, v.reply])
    return out
  }

  /**
   * Fixes each entry as it stands now: usable ones become seq 0 (usable whatever the positions
   * do next), the others are dropped, in memory and in the file. Called before the positions
   * start counting another primary's log (a higher epoch: a full resync follows), where an old
   * seq would be compared with the new log's positions.
   */
  async settle(): Promise<void> {
    const f = this.file
    if (this.settleInMemory().changed === 0 || f === null) return
    await this.tail
    await this.rewrite(f.path, f.log)
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

  private usable(v: Held): boolean {
    return v.seq === 0n || v.seq <= this.durable(v.exportId)
  }

  /** settle() in memory: how many entries went, and how many changed (went, or became seq 0). */
  private settleInMemory(): { dropped: number; changed: number } {
    let dropped = 0
    let changed = 0
    for (const [k, v] of this.entries) {
      if (v.seq === 0n) continue
      changed++
      if (this.usable(v)) {
        v.seq = 0n
      } else {
        this.entries.delete(k)
        this.bytes -= k.length + v.reply.length
        dropped++
      }
    }
    return { dropped, changed }
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
    const buf = Buffer.concat(entries.map((e) => encodeRecord(e.key, e.reply, e.exportId, e.seq)))
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
    const version = checkDrcHeader(b)
    if (typeof version === 'string') {
      log.warn({ file: path, why: version }, 'replication: cached replies file not read (it is replaced)')
      return
    }
    let at = HEADER
    while (at < b.length) {
      const r = decodeRecord(b, at, version)
      if (typeof r === 'string') {
        log.warn({ file: path, offset: at, why: r }, 'replication: cached replies file ends in a torn or damaged record; the entries after it are dropped')
        break
      }
      this.add(r.key, r.reply, r.exportId, r.seq)
      at = r.next
    }
  }

  /** Writes the file from memory (temporary file, fsync, rename, directory fsync) and appends to it from then on. */
  private async rewrite(path: string, log: Logger): Promise<void> {
    const parts = [drcHeader()]
    for (const [k, v] of this.entries) parts.push(encodeRecord(k, v.reply, v.exportId, v.seq))
    const data = Buffer.concat(parts)
    await this.file?.fd.close()
    this.file = null
    await writeAtomic(dirname(path), basename(path), data)
    const fd = await open(path, constants.O_RDWR | constants.O_DSYNC)
    this.file = { path, fd, bytes: data.length, records: this.entries.size, log }
  }
}
