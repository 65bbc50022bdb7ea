/*
 * One export's change log (server/replication/README.md): the replicating
 * layer appends every change here (ChangeSink), the senders read it back
 * (ChangeSource). Format and recovery: log-format.ts, log-segment.ts; the
 * set of segment files: log-files.ts.
 *
 * append() is synchronous: it encodes and frames the change, gives it the
 * next seq and queues it in memory. A background writer makes the queue
 * durable in group commits: everything appended while the previous group's
 * flush ran goes out as one durable write (an O_DSYNC fd: LogIo.durableWrites
 * in log-files.ts; a test's LogIo may write, then fdatasync; a roll to a new
 * segment adds a write and a directory fsync). durable(seq)
 * resolves when the log holds seq on disk and then awaits the `gate` hook
 * (sync mode: the standbys' acknowledgements, gate.ts). A failed write or
 * fsync fails the log: every waiter and every later append gets VfsError
 * EIO, since after a failed fsync the kernel may have dropped the pages and
 * nothing written since could be trusted (the PostgreSQL "fsyncgate" rule).
 *
 * Senders may read changes appended but not yet durable here: shipping
 * overlaps the local fsync, which sync mode needs for its latency budget.
 * The flip side: after a crash the primary's log may end before a standby's
 * position; the sender must treat a standby ahead of lastSeq() as needing
 * a resync, never as caught up.
 */
import type { Change, ChangeSink, MapEdit, SinkSplit } from '../../vfs/replica/change.ts'
import { isErrnoError, VfsError } from '../../vfs/errors.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { encodeChange } from './change-codec.ts'
import { encodeEdits } from './log-edits.ts'
import { corrupt, RECORD_HEADER_BYTES, sealRecord } from './log-format.ts'
import { recordChange, recordEdits, recordXdr } from './log-record.ts'
import { SegmentSet } from './log-files.ts'
import type { Framed, LogIo } from './log-files.ts'
import { fdatasync, readSegment, writeAll } from './log-segment.ts'
import type { ChangeSource, LoggedChange } from './log-types.ts'
import { ReplicationError } from './log-types.ts'

export type { LogIo } from './log-files.ts'

export interface ChangeLogOptions {
  /** STATE-DIR/replication/EXPORT-ID; created when missing. */
  dir: string
  exportId: number
  /** A segment is closed once the next record would take it past this (default 64 MiB; a larger record gets a segment of its own). */
  segmentBytes?: number
  /** Oldest segments are deleted past this, even if a standby still needs them (default 1 GiB; it then needs a full resync). */
  retentionBytes?: number
  /** Recent records kept in memory for the senders (default 16 MiB). */
  memoryBytes?: number
  /** WRITE data given to append() kept in memory for the senders, newest first (default 16 MiB). */
  dataBytes?: number
  /** Awaited by durable(seq) once seq is on disk: the sync-mode standby acknowledgements. */
  gate?: (seq: bigint) => Promise<void>
  /**
   * Awaited before any segment is deleted (trim, retention): makes the id map durable with every
   * edit appended so far, since the records about to go are then the only copy of some of them.
   */
  checkpoint?: () => Promise<void>
  io?: LogIo
}

export interface ChangeLogStats {
  lastSeq: bigint
  durableSeq: bigint
  firstSeq: bigint
  groups: number
  /** Flushes of segments (fdatasyncs, or O_DSYNC writes) plus fsyncs of the directory. */
  syncs: number
  bytesWritten: number
  segments: number
  diskBytes: number
  /** Bytes cut from a torn tail when the log was opened. */
  cutAtOpen: number
  /** Old segments past the retention cap that could not be deleted. */
  retainErrors: number
}

interface Waiter {
  seq: bigint
  resolve: () => void
  reject: (err: Error) => void
}

const MIB = 1024 * 1024

/**
 * The newest records keep the change they were appended with, so a sender that keeps up reads it
 * without decoding the record again (a few µs and a few objects per change, on the primary's hot
 * path); older ones are decoded from the frame. Bounded so that the log's memory stays about its
 * frames (a decoded change is a few times its frame).
 */
export const KEEP_DECODED = 4096

/** A record in memory: its frame, and the change (and a WRITE's data) it holds while it is among the newest. */
interface MemRecord extends Framed {
  change: Change | undefined
  data: Buffer | undefined
}
const DEFAULT_IO: LogIo = { write: writeAll, sync: fdatasync, durableWrites: true }

export class ChangeLog implements ChangeSink, ChangeSource {
  readonly dir: string
  readonly exportId: number
  readonly #segmentBytes: number
  readonly #retentionBytes: number
  readonly #memoryBytes: number
  readonly #dataBytes: number
  /** Bytes of WRITE data held by records in #mem; records before #dataAt hold none. */
  #keptData = 0
  #dataAt = 0
  readonly #gate: ((seq: bigint) => Promise<void>) | null
  #split: SinkSplit | undefined
  readonly #checkpoint: (() => Promise<void>) | null
  readonly #io: LogIo
  readonly #files: SegmentSet
  #last: bigint
  #durable: bigint
  /**
   * Recent records from #memHead on, in seq order: some already written (the oldest leave first
   * once they pass the memory budget), then every one not yet written (from #pendingAt on).
   * Every seq in [firstSeq, lastSeq] is in a segment, here, or both.
   */
  #mem: MemRecord[] = []
  #memHead = 0
  #pendingAt = 0
  #memWrittenBytes = 0
  #durableWaiters: Waiter[] = []
  readonly #appendWaiters = new Set<Waiter>()
  #writing: Promise<void> | null = null
  #wakeQueued = false
  #failed: VfsError | null = null
  #closed = false
  #groups = 0
  #retainErrors = 0

  private constructor(o: ChangeLogOptions, files: SegmentSet) {
    this.dir = o.dir
    this.exportId = o.exportId
    this.#segmentBytes = o.segmentBytes ?? 64 * MIB
    this.#retentionBytes = o.retentionBytes ?? 1024 * MIB
    this.#memoryBytes = o.memoryBytes ?? 16 * MIB
    this.#dataBytes = o.dataBytes ?? 16 * MIB
    this.#gate = o.gate ?? null
    this.#checkpoint = o.checkpoint ?? null
    this.#io = o.io ?? DEFAULT_IO
    this.#files = files
    this.#last = files.lastSeq()
    this.#durable = this.#last
  }

  /** Opens (or creates) the log, recovering a torn tail; REPL_LOG_VERSION / REPL_LOG_CORRUPT when it cannot be trusted. */
  static async open(o: ChangeLogOptions): Promise<ChangeLog> {
    return new ChangeLog(o, await SegmentSet.open(o.dir, o.exportId))
  }

  firstSeq(): bigint {
    // Before the first group is written, everything appended is in memory, from 1.
    return this.#files.firstSeq() ?? this.#durable + 1n
  }

  lastSeq(): bigint {
    return this.#last
  }

  /** The last change on disk. */
  durableSeq(): bigint {
    return this.#durable
  }

  stats(): ChangeLogStats {
    return {
      lastSeq: this.#last,
      durableSeq: this.#durable,
      firstSeq: this.firstSeq(),
      groups: this.#groups,
      syncs: this.#files.syncs,
      bytesWritten: this.#files.bytesWritten,
      segments: this.#files.count,
      diskBytes: this.#files.diskBytes,
      cutAtOpen: this.#files.cutAtOpen,
      retainErrors: this.#retainErrors,
    }
  }

  /**
   * The change is kept as given for the senders (KEEP_DECODED): neither it nor its buffers may
   * change after. A WRITE's `data` is kept beside it, not logged, within the data budget (the
   * oldest let go first): a sender that keeps up ships it without reading the file back.
   */
  append(change: Change, edits: readonly MapEdit[] = [], data?: Buffer): bigint {
    if (this.#failed !== null) throw this.#failed
    if (this.#closed) throw new VfsError('EIO', `change log ${this.dir} is closed`)
    const w = new XdrWriter(256)
    // Room for the record header, filled in by sealRecord once the change is encoded.
    for (let i = 0; i < RECORD_HEADER_BYTES / 4; i++) w.reserve()
    encodeEdits(w, edits)
    encodeChange(w, change)
    const seq = this.#last + 1n
    const rec: MemRecord = { seq, frame: sealRecord(w.toBuffer(), seq), change, data: undefined }
    this.#mem.push(rec)
    const old = this.#mem[this.#mem.length - 1 - KEEP_DECODED]
    if (old !== undefined) {
      old.change = undefined
      this.#dropData(old)
    }
    if (data !== undefined && change.op === 'write' && change.data === null && data.length === change.length && data.length <= this.#dataBytes) {
      while (this.#keptData + data.length > this.#dataBytes && this.#dataAt < this.#mem.length) this.#dropData(this.#mem[this.#dataAt++])
      rec.data = data
      this.#keptData += data.length
    }
    this.#last = seq
    // setImmediate, not a microtask: appends made by every I/O callback of this loop turn join the group.
    this.#writing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#writeLoop())
    // The senders (waitAfter) are woken one immediate later, after the writer's (immediates run in
    // order): the group's write is in the thread pool before a sender spends its CPU reading and
    // encoding an APPEND, so that work overlaps the disk flush a stable reply waits for instead of
    // coming before it. The sender ships the same changes either way; in sync mode the reply waits
    // for the APPEND as well, which now leaves a few µs later.
    if (!this.#wakeQueued && this.#appendWaiters.size > 0) {
      this.#wakeQueued = true
      setImmediate(() => {
        this.#wakeQueued = false
        for (const waiter of this.#appendWaiters) {
          if (waiter.seq < this.#last) waiter.resolve()
        }
      })
    }
    return seq
  }

  /**
   * durable() in two (ChangeSink.split): the local log, and the standbys' acknowledgement, for a
   * caller that waits for the second itself (vfs/replica/held-changes.ts). Only with a gate.
   */
  get split(): SinkSplit | undefined {
    const gate = this.#gate
    if (gate === null) return undefined
    return (this.#split ??= { exportId: this.exportId, durableHere: (seq) => this.#durableHere(seq), replicated: gate })
  }

  async durable(seq: bigint): Promise<void> {
    await this.#durableHere(seq)
    if (this.#gate !== null) await this.#gate(seq)
  }

  async #durableHere(seq: bigint): Promise<void> {
    if (seq > this.#durable) {
      if (this.#failed !== null) throw this.#failed
      if (seq > this.#last) throw new VfsError('EINVAL', `change log ${this.dir}: durable(${String(seq)}) but only ${String(this.#last)} appended`)
      await new Promise<void>((resolve, reject) => this.#durableWaiters.push({ seq, resolve, reject }))
    }
  }

  async read(from: bigint, maxChanges: number, maxBytes: number): Promise<LoggedChange[]> {
    const out: LoggedChange[] = []
    await this.#scan(from, maxChanges, maxBytes, (seq, frame, change, data) => {
      const l: LoggedChange = { seq, change: change ?? recordChange(this.dir, seq, frame), bytes: frame.length, xdr: recordXdr(this.dir, seq, frame) }
      if (data !== undefined) l.data = data
      out.push(l)
    })
    return out
  }

  /**
   * Calls `each` with the id map edits of every change after `after`, in order (map-recovery.ts,
   * at start). REPL_TRIMMED when the log no longer starts right after `after`.
   */
  async mapEdits(after: bigint, each: (seq: bigint, edits: MapEdit[]) => void): Promise<void> {
    let next = after + 1n
    while (next <= this.#last) {
      const from = next
      await this.#scan(from, 4096, 4 * MIB, (seq, frame) => {
        each(seq, recordEdits(this.dir, seq, frame))
        next = seq + 1n
      })
      if (next === from) throw corrupt(this.dir, 0, `change ${String(from)} missing`)
    }
  }

  /** The records from `from` on, up to the caps (at least one), each given to `visit` in order. */
  async #scan(from: bigint, maxChanges: number, maxBytes: number, visit: (seq: bigint, frame: Buffer, change?: Change, data?: Buffer) => void): Promise<void> {
    if (this.#closed) throw new ReplicationError('REPL_CLOSED', `change log ${this.dir} is closed`)
    // Changed by take(), which the segment reader calls back: an object, so the loop sees it change.
    const at = { next: from, bytes: 0, count: 0, full: false }
    const take = (seq: bigint, frame: Buffer, change?: Change, data?: Buffer): boolean => {
      if (at.count > 0 && at.bytes + frame.length > maxBytes) {
        at.full = true
        return false
      }
      visit(seq, frame, change, data)
      at.count++
      at.bytes += frame.length
      at.next = seq + 1n
      at.full = at.count >= maxChanges
      return !at.full
    }
    const isFull = (): boolean => at.full
    while (!at.full && at.next <= this.#last) {
      const next = at.next
      if (next < this.firstSeq()) throw this.#trimmed(next)
      const head = this.#mem[this.#memHead]
      if (head !== undefined && next >= head.seq) {
        for (let i = this.#memHead + Number(next - head.seq); i < this.#mem.length; i++) {
          const e = this.#mem[i]
          if (e === undefined || !take(e.seq, e.frame, e.change, e.data)) break
        }
        break
      }
      const seg = this.#files.holding(next)
      if (seg === undefined) throw new ReplicationError('REPL_LOG_CORRUPT', `change log ${this.dir}: no segment holds change ${String(next)}`)
      try {
        await readSegment(seg, next, maxBytes, take)
      } catch (err) {
        // Trimmed while we read: the sender needs a resync from here.
        if (isErrnoError(err) && err.code === 'ENOENT' && next < this.firstSeq()) throw this.#trimmed(next)
        throw err
      }
      if (at.next === next && !isFull()) throw corrupt(seg.path, 0, `change ${String(next)} missing`)
    }
  }

  async waitAfter(seq: bigint, signal?: AbortSignal): Promise<void> {
    if (this.#last > seq) return
    if (this.#closed) throw new ReplicationError('REPL_CLOSED', `change log ${this.dir} is closed`)
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#appendWaiters.delete(waiter)
        reject(signal?.reason as Error)
      }
      const waiter: Waiter = {
        seq,
        resolve: () => {
          this.#appendWaiters.delete(waiter)
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (err) => {
          this.#appendWaiters.delete(waiter)
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#appendWaiters.add(waiter)
    })
  }

  /** Deletes the segments holding only changes <= seq; the newest segment always stays (it names the next seq). */
  async trim(seq: bigint): Promise<void> {
    await this.#checkpoint?.()
    await this.#files.drop((s) => s.lastSeq <= seq)
  }

  /** Resolves once the writer is idle: everything appended so far written (or the log failed) and old segments past the cap deleted. */
  async settled(): Promise<void> {
    while (this.#writing !== null) await this.#writing
  }

  /** Writes what is queued, then closes; later calls fail (REPL_CLOSED, or EIO for append). */
  async close(): Promise<void> {
    this.#closed = true
    await this.settled()
    const err = new ReplicationError('REPL_CLOSED', `change log ${this.dir} is closed`)
    for (const w of this.#appendWaiters) w.reject(err)
    await this.#files.close()
  }

  #trimmed(seq: bigint): ReplicationError {
    return new ReplicationError('REPL_TRIMMED', `change log ${this.dir}: change ${String(seq)} was trimmed, the log starts at ${String(this.firstSeq())}`)
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#pendingAt < this.#mem.length && this.#failed === null) {
        const batch = this.#mem.slice(this.#pendingAt)
        await this.#files.append(batch, this.#segmentBytes, this.#io)
        this.#groups++
        this.#pendingAt += batch.length
        for (const e of batch) this.#memWrittenBytes += e.frame.length
        this.#durable = batch.at(-1)?.seq ?? this.#durable
        this.#releaseDurable()
        this.#shrinkMemory()
        try {
          if (this.#files.diskBytes > this.#retentionBytes) {
            await this.#checkpoint?.()
            await this.#files.retain(this.#retentionBytes)
          }
        } catch {
          // An old segment that would not go (EACCES, EBUSY) costs disk, not durability: counted, and the log goes on.
          this.#retainErrors++
        }
      }
    } catch (err) {
      this.#fail(err)
    } finally {
      this.#writing = null
    }
  }

  #releaseDurable(): void {
    const waiting: Waiter[] = []
    for (const w of this.#durableWaiters) {
      if (w.seq <= this.#durable) w.resolve()
      else waiting.push(w)
    }
    this.#durableWaiters = waiting
  }

  #dropData(e: MemRecord | undefined): void {
    if (e?.data === undefined) return
    this.#keptData -= e.data.length
    e.data = undefined
  }

  /** Drops written records from memory past the budget; readers then go to the files. */
  #shrinkMemory(): void {
    while (this.#memHead < this.#pendingAt && this.#memWrittenBytes > this.#memoryBytes) {
      const e = this.#mem[this.#memHead]
      this.#memWrittenBytes -= e?.frame.length ?? 0
      this.#dropData(e)
      this.#memHead++
    }
    if (this.#memHead > 1024 && this.#memHead * 2 > this.#mem.length) {
      this.#mem = this.#mem.slice(this.#memHead)
      this.#pendingAt -= this.#memHead
      this.#dataAt = Math.max(0, this.#dataAt - this.#memHead)
      this.#memHead = 0
    }
  }

  #fail(err: unknown): void {
    const why = err instanceof Error ? err.message : String(err)
    this.#failed = new VfsError('EIO', `change log ${this.dir}: ${why}`, { cause: err })
    for (const w of this.#durableWaiters) w.reject(this.#failed)
    this.#durableWaiters = []
  }
}
