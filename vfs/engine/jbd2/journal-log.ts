/*
 * The jbd2 log written by us: TxnLog (txn/txn.ts) over the journal inode's blocks, in the layout
 * the kernel and e2fsck replay (log-blocks.ts; recovery rules in recovery.ts).
 *
 * What open does, as ext4 does at mount: refuse a journal that still holds transactions
 * (recover() first); turn on the features the kernel would (64bit with a 64bit file system, csum
 * v3 + crc32c with metadata_csum); point s_start at s_first with s_sequence = the first tid we will
 * write (one past the clean journal's, so no stale block of an older log can match); then set the
 * file system's needs_recovery. Each step is flushed before the next, so a crash at any point
 * leaves an image the kernel, e2fsck and recover() accept.
 *
 * A commit writes its revoke blocks, then descriptor + journaled blocks, flushes, writes the
 * commit block and flushes again: the commit block is durable only after everything it vouches for
 * (no async_commit). `release` moves the tail (s_start/s_sequence) past checkpointed transactions;
 * `close` empties the log (s_start = 0) and clears needs_recovery.
 *
 * The manager's tids and jbd2's sequence numbers are kept apart: the first tid committed maps to
 * the journal's next sequence, later tids by offset (the TxnLog contract says they are
 * consecutive), so the manager may number transactions as it likes.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { hasFeature } from '../format/features.ts'
import type { TxnLog } from '../txn/txn.ts'
import { Jbd2Error } from './errors.ts'
import { openJournal, writeJournalSuperblock } from './journal-open.ts'
import type { OpenedJournal } from './journal-open.ts'
import {
  descriptorCapacity, encodeCommit, encodeDescriptor, encodeRevoke, escapeBlock, logFormat, revokeCapacity,
} from './log-blocks.ts'
import type { LogFormat } from './log-blocks.ts'
import { setNeedsRecovery } from './needs-recovery.ts'
import { JBD2_CRC32C_CHKSUM, JBD2_FEATURE_INCOMPAT_64BIT, JBD2_FEATURE_INCOMPAT_CSUM_V3, JBD2_SUPERBLOCK_V2 } from './superblock.ts'

interface LoggedTxn {
  tid: number
  sequence: number
  /** First log block of the transaction. */
  start: number
  /** Log blocks it occupies. */
  length: number
}

export class Jbd2Log implements TxnLog {
  private readonly dev: BlockDevice
  private readonly j: OpenedJournal
  private readonly fmt: LogFormat
  private readonly first: number
  private readonly maxlen: number
  /** Next log block to write. */
  private head: number
  /** Sequence of the next commit. */
  private nextSequence: number
  /** The tid mapped to nextSequence, once the first commit fixed the mapping. */
  private nextTid: number | undefined
  private readonly live: LoggedTxn[] = []
  private used = 0
  private lastCommitSec = 0
  private closed = false
  /** Why the log stopped: a failed write or flush leaves the log's contents unknown, as jbd2 aborts. */
  private aborted: unknown = undefined
  /** Commits, releases and close run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(dev: BlockDevice, j: OpenedJournal) {
    this.dev = dev
    this.j = j
    this.fmt = logFormat(j.jsb)
    this.first = j.jsb.first
    this.maxlen = j.jsb.maxlen
    this.head = j.jsb.first
    this.nextSequence = j.jsb.sequence
  }

  /** Open the journal of the file system on dev for writing (see the header for what it changes). */
  static async open(dev: BlockDevice): Promise<Jbd2Log> {
    const j = await openJournal(dev)
    const jsb = j.jsb
    if (jsb.start !== 0) throw new Jbd2Error('JBD2_NEEDS_RECOVERY', `the journal holds transactions from log block ${jsb.start} (s_sequence ${jsb.sequence}); run recovery first`)
    if (jsb.blockType !== JBD2_SUPERBLOCK_V2) throw new Jbd2Error('JBD2_UNSUPPORTED_FEATURE', 'a v1 journal superblock (we write v2 only)')
    let incompat = jsb.featureIncompat
    let checksumType = jsb.checksumType
    if (hasFeature(j.sb, 'incompat', '64bit')) incompat |= JBD2_FEATURE_INCOMPAT_64BIT
    if (hasFeature(j.sb, 'ro_compat', 'metadata_csum')) {
      incompat |= JBD2_FEATURE_INCOMPAT_CSUM_V3
      checksumType = JBD2_CRC32C_CHKSUM
    }
    const sequence = (jsb.sequence + 1) >>> 0
    await writeJournalSuperblock(dev, j, { ...jsb, featureIncompat: incompat >>> 0, checksumType, start: jsb.first, sequence })
    await dev.flush()
    await setNeedsRecovery(dev, true)
    await dev.flush()
    return new Jbd2Log(dev, j)
  }

  /** Log blocks the log can hold at most (all but the superblock, less one so head never meets tail). */
  private get capacity(): number {
    return this.maxlen - this.first - 1
  }

  get free(): number {
    return this.capacity - this.used
  }

  cost(blocks: number, revokes: number): number {
    return Math.ceil(blocks / descriptorCapacity(this.fmt)) + blocks + Math.ceil(revokes / revokeCapacity(this.fmt)) + 1
  }

  commit(tid: number, blocks: ReadonlyArray<{ block: number; data: Buffer }>, revokes: readonly number[]): Promise<void> {
    return this.serial(() => this.doCommit(tid, blocks, revokes))
  }

  release(tid: number): Promise<void> {
    return this.serial(() => this.abortOnError(() => this.doRelease(tid)))
  }

  close(): Promise<void> {
    return this.serial(async () => {
      this.checkOpen()
      this.closed = true
      await writeJournalSuperblock(this.dev, this.j, { ...this.j.jsb, start: 0, sequence: this.nextSequence })
      await this.dev.flush()
      await setNeedsRecovery(this.dev, false)
      await this.dev.flush()
    })
  }

  quiesce(): Promise<void> {
    return this.serial(() => this.abortOnError(async () => {
      this.checkOpen()
      if (this.live.length > 0) throw new Jbd2Error('JBD2_STATE', `quiesce with ${this.live.length} transactions not released`)
      await writeJournalSuperblock(this.dev, this.j, { ...this.j.jsb, start: 0, sequence: this.nextSequence })
      await this.dev.flush()
      await setNeedsRecovery(this.dev, false)
      await this.dev.flush()
    }))
  }

  resume(): Promise<void> {
    return this.serial(() => this.abortOnError(async () => {
      this.checkOpen()
      // As open does: the log's start durable before needs_recovery, and both before any commit.
      await writeJournalSuperblock(this.dev, this.j, { ...this.j.jsb, start: this.head, sequence: this.nextSequence })
      await this.dev.flush()
      await setNeedsRecovery(this.dev, true)
      await this.dev.flush()
    }))
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  private checkOpen(): void {
    if (this.closed) throw new Jbd2Error('JBD2_STATE', 'the journal is closed')
    if (this.aborted !== undefined) throw new Jbd2Error('JBD2_STATE', 'the journal aborted after a failed write; recover it before further use', { cause: this.aborted })
  }

  /** Device I/O failed half-way: no later commit may trust where the log's head is. */
  private async abortOnError<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      this.aborted = err
      throw err
    }
  }

  private async doCommit(tid: number, blocks: ReadonlyArray<{ block: number; data: Buffer }>, revokes: readonly number[]): Promise<void> {
    this.checkOpen()
    if (this.nextTid !== undefined && tid !== this.nextTid) throw new Jbd2Error('JBD2_STATE', `commit of tid ${tid}, expected ${this.nextTid}`)
    const bs = this.fmt.blockSize
    for (const b of blocks) {
      if (b.data.length !== bs) throw new RangeError(`block ${b.block}: ${b.data.length} bytes, block size ${bs}`)
      if (!Number.isSafeInteger(b.block) || b.block < 0 || b.block >= this.j.map.fsBlocks) throw new RangeError(`block ${b.block} outside the file system`)
    }
    const cost = this.cost(blocks.length, revokes.length)
    if (cost > this.capacity) throw new Jbd2Error('JBD2_NO_SPACE', `transaction of ${cost} log blocks, the log holds ${this.capacity}`)
    if (cost > this.free) throw new Jbd2Error('JBD2_NO_SPACE', `transaction of ${cost} log blocks, ${this.free} free: release checkpointed transactions first`)
    const seq = this.nextSequence
    const out: Buffer[] = []
    const rcap = revokeCapacity(this.fmt)
    for (let i = 0; i < revokes.length; i += rcap) out.push(encodeRevoke(this.fmt, seq, revokes.slice(i, i + rcap)))
    const dcap = descriptorCapacity(this.fmt)
    for (let i = 0; i < blocks.length; i += dcap) {
      const logged = blocks.slice(i, i + dcap).map((b) => escapeBlock(b.block, b.data))
      out.push(encodeDescriptor(this.fmt, seq, logged))
      for (const l of logged) out.push(l.data)
    }
    const start = this.head
    const now = Date.now()
    // Recovery tells stale commit blocks by their time going backwards: never let ours.
    const sec = Math.max(this.lastCommitSec, Math.floor(now / 1000))
    const commitAt = this.advance(start, out.length)
    await this.abortOnError(async () => {
      await this.writeLog(start, out)
      await this.dev.flush()
      await this.writeLog(commitAt, [encodeCommit(this.fmt, seq, sec, (now % 1000) * 1e6)])
      await this.dev.flush()
    })
    this.lastCommitSec = sec
    this.head = this.advance(commitAt, 1)
    this.live.push({ tid, sequence: seq, start, length: out.length + 1 })
    this.used += out.length + 1
    this.nextSequence = (seq + 1) >>> 0
    this.nextTid = tid + 1
  }

  private async doRelease(tid: number): Promise<void> {
    this.checkOpen()
    let n = 0
    while (n < this.live.length && (this.live[n]?.tid ?? Infinity) <= tid) n++
    if (n === 0) return
    const gone = this.live.splice(0, n)
    for (const t of gone) this.used -= t.length
    const oldest = this.live[0]
    const start = oldest?.start ?? this.head
    const sequence = oldest?.sequence ?? this.nextSequence
    await writeJournalSuperblock(this.dev, this.j, { ...this.j.jsb, start, sequence })
    await this.dev.flush()
  }

  private advance(at: number, n: number): number {
    let b = at + n
    while (b >= this.maxlen) b -= this.maxlen - this.first
    return b
  }

  /** Write consecutive log blocks from `at`, wrapping, merging runs that are contiguous on disk. */
  private async writeLog(at: number, blocks: readonly Buffer[]): Promise<void> {
    const bs = this.fmt.blockSize
    let i = 0
    while (i < blocks.length) {
      const phys = this.j.map.phys(at)
      const run: Buffer[] = []
      let cur = at
      while (i < blocks.length) {
        const b = blocks[i]
        if (b === undefined || (run.length > 0 && (cur === this.first || this.j.map.phys(cur) !== phys + run.length))) break
        run.push(b)
        i++
        cur = this.advance(cur, 1)
        if (cur === this.first) break
      }
      await this.dev.write(phys * bs, run.length === 1 ? (run[0] ?? Buffer.alloc(0)) : Buffer.concat(run))
      at = cur
    }
  }
}
