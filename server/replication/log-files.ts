/*
 * The change log's segment files as a set (change-log.ts drives it): open
 * with recovery, append a group of framed records, delete old segments,
 * find the segment holding a seq. A new segment joins the set only once
 * its header and first records are durable (written O_DSYNC or fdatasynced, directory
 * fsynced), and the newest segment is never deleted, so the set always
 * names the next seq, whatever was trimmed.
 */
import { constants } from 'node:fs'
import { mkdir, readdir, unlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { isErrnoError } from '../../vfs/errors.ts'
import { corrupt, encodeHeader, parseSegmentName, segmentName } from './log-format.ts'
import { close, INDEX_EVERY, open, scanSegment, syncDir } from './log-segment.ts'
import type { IndexPoint, Segment } from './log-segment.ts'

/** The two file operations of a group commit, replaceable so tests can count them or make them fail. */
export interface LogIo {
  /** Writes all of `data` at `position`. */
  write(fd: number, data: Buffer, position: number): Promise<void>
  /** fdatasync(2). */
  sync(fd: number): Promise<void>
  /**
   * Segments are written through an fd opened O_DSYNC, so `write` returns only once its data
   * (and the size that reaches it) is on stable storage, as write + fdatasync would (POSIX
   * O_DSYNC: synchronized I/O data integrity completion), and `sync` is not called. The group
   * then costs one system call and one trip through the thread pool instead of two in a row:
   * under load every trip waits for a thread to be scheduled, and a stable reply waits for them.
   * Crash recovery is unchanged: a write cut short by a crash is a torn tail, cut at open, and
   * its group was never acknowledged.
   */
  durableWrites?: boolean
}

const DSYNC_CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC
const DSYNC_APPEND = constants.O_WRONLY | constants.O_DSYNC

export interface Framed {
  seq: bigint
  frame: Buffer
}

export class SegmentSet {
  readonly dir: string
  readonly exportId: number
  /** Bytes cut from a torn tail at open. */
  readonly cutAtOpen: number
  /** Flushes of segments (fdatasyncs, or O_DSYNC writes) plus fsyncs of the directory. */
  syncs = 0
  bytesWritten = 0
  /** Oldest first; the last is the one appended to. */
  readonly #segments: Segment[]
  #fd: number | null
  /** Whether #fd was opened O_DSYNC (the fd a recovery scan leaves open was not). */
  #fdDurable = false
  #diskBytes: number
  #dropping: Promise<void> = Promise.resolve()

  private constructor(dir: string, exportId: number, segments: Segment[], fd: number | null, cut: number) {
    this.dir = dir
    this.exportId = exportId
    this.#segments = segments
    this.#fd = fd
    this.#diskBytes = segments.reduce((n, s) => n + s.size, 0)
    this.cutAtOpen = cut
  }

  /** Opens the segments in `dir` (created when missing), checking each and cutting a torn tail. */
  static async open(dir: string, exportId: number): Promise<SegmentSet> {
    const created = await mkdir(dir, { recursive: true })
    if (created !== undefined) {
      // New directories' names are durable once their parents are fsynced (a new segment fsyncs only `dir` itself).
      const top = dirname(resolve(created))
      for (let d = resolve(dir); d !== top && dirname(d) !== d; d = dirname(d)) await syncDir(dirname(d))
    }
    const names: { name: string; seq: bigint }[] = []
    for (const name of await readdir(dir)) {
      const seq = parseSegmentName(name)
      if (seq !== null) names.push({ name, seq })
    }
    names.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0))
    const segments: Segment[] = []
    let fd: number | null = null
    let cut = 0
    try {
      for (const [i, { name, seq }] of names.entries()) {
        const s = await scanSegment(dir, name, seq, exportId, i === names.length - 1)
        fd = s.fd
        cut += s.cut
        const prev = segments.at(-1)
        if (prev !== undefined && s.segment.firstSeq !== prev.lastSeq + 1n) {
          throw corrupt(s.segment.path, 16, `first seq ${String(s.segment.firstSeq)} does not follow ${String(prev.lastSeq)}, the last of ${prev.path},`)
        }
        segments.push(s.segment)
      }
    } catch (err) {
      if (fd !== null) await close(fd)
      throw err
    }
    return new SegmentSet(dir, exportId, segments, fd, cut)
  }

  /** The oldest seq still in a file; null before anything was written. */
  firstSeq(): bigint | null {
    return this.#segments[0]?.firstSeq ?? null
  }

  /** The last seq on disk (0n before anything was written). */
  lastSeq(): bigint {
    return this.#segments.at(-1)?.lastSeq ?? 0n
  }

  get count(): number {
    return this.#segments.length
  }

  get diskBytes(): number {
    return this.#diskBytes
  }

  holding(seq: bigint): Segment | undefined {
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const s = this.#segments[i]
      if (s !== undefined && s.firstSeq <= seq) return seq <= s.lastSeq ? s : undefined
    }
    return undefined
  }

  /**
   * Appends one group: into the open segment while it has room, into new
   * ones after (a record always fits in a segment of its own). One write
   * and one fdatasync per segment touched, plus a directory fsync per new one.
   */
  async append(batch: readonly Framed[], segmentBytes: number, io: LogIo): Promise<void> {
    let i = 0
    while (i < batch.length) {
      const first = batch[i]
      if (first === undefined) break
      const current = this.#segments.at(-1)
      // A new segment when there is none, or when the current one holds a record and this one would take it past the size.
      const fresh = current === undefined || this.#fd === null || (current.lastSeq >= current.firstSeq && current.size + first.frame.length > segmentBytes)
      const seg: Segment = fresh ? { path: join(this.dir, segmentName(first.seq)), firstSeq: first.seq, lastSeq: first.seq - 1n, size: 0, index: [] } : current
      const parts: Buffer[] = fresh ? [encodeHeader(this.exportId, first.seq)] : []
      const points: IndexPoint[] = []
      const start = seg.size
      let size = start + (parts[0]?.length ?? 0)
      for (; i < batch.length; i++) {
        const e = batch[i]
        if (e === undefined || (e !== first && size + e.frame.length > segmentBytes)) break
        if (Number(e.seq - seg.firstSeq) % INDEX_EVERY === 0) points.push({ seq: e.seq, offset: size })
        parts.push(e.frame)
        size += e.frame.length
      }
      const durable = io.durableWrites === true
      if (!fresh && durable && !this.#fdDurable && this.#fd !== null) {
        // The segment left open by recovery: the same file again, O_DSYNC this time.
        const again = await open(seg.path, DSYNC_APPEND)
        await close(this.#fd)
        this.#fd = again
        this.#fdDurable = true
      }
      const fd = fresh || this.#fd === null ? await open(seg.path, durable ? DSYNC_CREATE : 'wx') : this.#fd
      const data = parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts)
      try {
        await io.write(fd, data, start)
        this.bytesWritten += data.length
        if (!durable) await io.sync(fd)
        this.syncs++
        if (fresh) {
          await syncDir(this.dir)
          this.syncs++
        }
      } catch (err) {
        if (fresh) await close(fd)
        throw err
      }
      seg.size = size
      seg.lastSeq = batch[i - 1]?.seq ?? seg.lastSeq
      seg.index.push(...points)
      this.#diskBytes += data.length
      if (fresh) {
        const old = this.#fd
        this.#fd = fd
        this.#fdDurable = durable
        this.#segments.push(seg)
        if (old !== null) await close(old)
      }
    }
  }

  /** Deletes segments from the oldest while `which` says so, never the newest. One deletion at a time. */
  drop(which: (s: Segment) => boolean): Promise<void> {
    const run = this.#dropping.then(() => this.#dropNow(which))
    this.#dropping = run.catch(() => undefined)
    return run
  }

  async #dropNow(which: (s: Segment) => boolean): Promise<void> {
    const gone: Segment[] = []
    for (let s = this.#segments[0]; s !== undefined && this.#segments.length > 1 && which(s); s = this.#segments[0]) {
      gone.push(s)
      this.#segments.shift()
      this.#diskBytes -= s.size
    }
    for (const [k, s] of gone.entries()) {
      try {
        await unlink(s.path)
      } catch (err) {
        if (isErrnoError(err) && err.code === 'ENOENT') continue
        // Oldest first, and on a failure the rest stay: the files must remain one unbroken run of seqs.
        const kept = gone.slice(k)
        this.#segments.unshift(...kept)
        for (const x of kept) this.#diskBytes += x.size
        throw err
      }
    }
  }

  /** Deletes the oldest segments while the set is over `bytes`. */
  async retain(bytes: number): Promise<void> {
    let total = this.#diskBytes
    await this.drop((s) => {
      const over = total > bytes
      total -= s.size
      return over
    })
  }

  async close(): Promise<void> {
    if (this.#fd !== null) await close(this.#fd)
    this.#fd = null
  }
}
