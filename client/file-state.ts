/*
 * What this client holds of one file's data that the server may not have on
 * stable storage yet, shared by every open of the file (as a page cache is):
 *   dirty     blocks written by the application, not yet sent;
 *   inflight  segments being sent as WRITE (or waiting for an older
 *             overlapping WRITE to finish, so the server sees writes in order);
 *   unstable  segments the server acknowledged UNSTABLE, kept with the write
 *             verifier of their reply until a COMMIT returns the same verifier
 *             (RFC 1813 §3.3.7, §3.3.21; specs P10, P11).
 * Newer writes trim older unstable segments (and mark older in-flight ones,
 * trimmed when acknowledged), so a re-send can never overwrite newer data.
 * Reads overlay all three on the server's data (read-your-writes).
 */
import type { Range } from './file-ranges.ts'
import { addRange } from './file-ranges.ts'
import type { CallCredential } from './rpc/auth.ts'

/**
 * A buffer a caller handed over to be given back (NfsFile.write transfer:
 * a pool buffer, or one with a release callback): held as dirty and
 * segment data until none of its bytes are held any more, then given
 * back. `bytes` counts what is held, plus one while the write() that
 * handed it over still runs.
 */
export interface Lease {
  bytes: number
  readonly give: () => void
}

/** n bytes of the lease are no longer held; the buffer goes back at zero. */
export function dropLease(l: Lease | null, n: number): void {
  if (l === null || n <= 0) return
  l.bytes -= n
  if (l.bytes === 0) l.give()
}

export interface Segment {
  /** Absolute file offset. */
  offset: number
  data: Buffer
  /** Write order: a larger seq is newer data. */
  seq: number
  /** The verifier of the WRITE reply (unstable segments only). */
  verf: Buffer | null
  /** Parts replaced by newer writes while in flight (absolute offsets). */
  superseded: Range[]
  /** Settles when the WRITE of this segment is over (ordering of overlapping writes). */
  done: Promise<void> | null
  /** Who wrote it: its WRITE (and the COMMIT) go as this credential (undefined: the mount's). */
  cred?: CallCredential | undefined
  /** The handed-over buffer the data lies in, if any. */
  lease: Lease | null
}

export interface DirtyBlock {
  index: number
  /** Grows on demand up to the block size; only `ranges` hold data. */
  buf: Buffer
  /** Dirty parts, offsets inside the block. */
  ranges: Range[]
  /** The writer's credential: one per block (another writer's data flushes it first). */
  cred?: CallCredential | undefined
  /** buf is a handed-over pool buffer (a whole block, sent at once). */
  lease: Lease | null
}

export function segEnd(s: Segment): number {
  return s.offset + s.data.length
}

export class FileState {
  readonly fh: Buffer
  readonly key: string
  /** Open NfsFiles on this state, and how many of them may write. */
  opens = 0
  writers = 0
  readonly dirty = new Map<number, DirtyBlock>()
  readonly inflight = new Set<Segment>()
  unstable: Segment[] = []
  /** Bytes held: dirty ranges + in-flight + unstable segments. */
  held = 0
  /** The end of the furthest byte written since the last completed sync (the local size). */
  writtenEnd = 0
  /** Bumped when data leaves the overlay (committed, FILE_SYNC, failed): a READ that overlapped it is re-sent. */
  gen = 0
  /** A background write error not yet reported to the application. */
  error: Error | null = null
  /** WRITEs of the file were in flight together since the last COMMIT (their wcc may have been applied out of order). */
  attrsSuspect = false
  timer: NodeJS.Timeout | null = null
  /** A COMMIT sent while writing goes on (writeback.ts commitBehind), or null. */
  committing: Promise<void> | null = null
  /** Background COMMITs in a row that found a new verifier. */
  behindRounds = 0
  /** Background write-back work (never rejects). */
  readonly tasks = new Set<Promise<void>>()
  seq = 0

  constructor(fh: Buffer, key: string) {
    this.fh = fh
    this.key = key
  }

  /** The local view of the size: the server's, or further if we wrote beyond it. */
  sizeWith(serverSize: bigint | undefined): bigint {
    const s = serverSize ?? 0n
    return BigInt(this.writtenEnd) > s ? BigInt(this.writtenEnd) : s
  }

  /** Writing, or holding data: attribute changes are (very likely) our own. */
  get busy(): boolean {
    return this.writers > 0 || this.held > 0 || this.tasks.size > 0
  }

  takeError(): Error | null {
    const e = this.error
    this.error = null
    return e
  }
}

/**
 * Cut [start, end) out of a segment list (in place where the segment keeps
 * its head, so a COMMIT's snapshot still finds it); returns the bytes removed.
 */
export function cutSegments(list: Segment[], start: number, end: number): number {
  // Sequential writes land past everything held: nothing to cut, nothing to rebuild.
  if (!list.some(s => s.offset < end && segEnd(s) > start)) return 0
  let removed = 0
  const out: Segment[] = []
  for (const s of list) {
    const e = segEnd(s)
    if (e <= start || s.offset >= end) {
      out.push(s)
      continue
    }
    const cut = Math.min(e, end) - Math.max(s.offset, start)
    removed += cut
    const tail = e > end ? s.data.subarray(end - s.offset) : null
    if (s.offset < start) {
      s.data = s.data.subarray(0, start - s.offset)
      out.push(s)
      if (tail !== null) out.push({ ...s, offset: end, data: tail, superseded: [] })
    } else if (tail !== null) {
      s.data = tail
      s.offset = end
      out.push(s)
    }
    // Last: at zero the buffer goes back and is no longer ours to touch.
    dropLease(s.lease, cut)
  }
  list.splice(0, list.length, ...out)
  return removed
}

/** Mark [start, end) of in-flight segments as replaced by newer data. */
export function supersedeInflight(f: FileState, start: number, end: number): void {
  for (const s of f.inflight) {
    const a = Math.max(start, s.offset)
    const b = Math.min(end, segEnd(s))
    if (a < b) addRange(s.superseded, a, b)
  }
}

/**
 * Lay what the file holds over `data` (block `index` as the server has it,
 * owned by the caller): unstable and in-flight segments oldest first, then
 * dirty ranges. Returns the buffer, grown when the overlay reaches further.
 */
export function overlay(f: FileState, index: number, blockSize: number, data: Buffer): Buffer {
  const start = index * blockSize
  const end = start + blockSize
  let out = data
  const put = (at: number, bytes: Buffer): void => {
    const need = at - start + bytes.length
    if (need > out.length) {
      const grown = Buffer.alloc(need)
      out.copy(grown)
      out = grown
    }
    bytes.copy(out, at - start)
  }
  const segs = [...f.unstable, ...f.inflight].filter(s => s.offset < end && segEnd(s) > start).sort((a, b) => a.seq - b.seq)
  for (const s of segs) {
    const a = Math.max(start, s.offset)
    put(a, s.data.subarray(a - s.offset, Math.min(end, segEnd(s)) - s.offset))
  }
  const d = f.dirty.get(index)
  if (d !== undefined) for (const r of d.ranges) put(start + r.start, d.buf.subarray(r.start, r.end))
  return out
}
