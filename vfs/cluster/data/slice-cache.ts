/*
 * Chunk slice lists this server read, per inode. Unlike blocks they change
 * (writes append, truncation and compaction replace), so they are dropped on
 * every change notice (invalidate) and by this server's own changes. Each
 * drop stamps the inode with a new mark: a reader that started before a drop
 * sees a different mark when it ends and reads again, so it never keeps or
 * returns a list fetched before a change it should see.
 *
 * Without a change feed (cache mode 'per-request', meta/cache-mode.ts) no
 * notice would come: nothing is kept and every read fetches the chunk rows.
 *
 * Memory. Entries are objects, so the bytes are an estimate: a fixed cost per
 * inode, per chunk list and per record (measured on Node 20: a record decoded
 * by decodeSlices is ~90 bytes of heap, an inode with one chunk list ~440).
 * Besides the 10,000 inodes, the estimate is bounded (32 MiB): one file of
 * terabytes has thousands of chunks, each up to COMPACT_AT records, and the
 * inode count alone would not keep that from growing without limit. The
 * marks and settling stamps (~64 bytes each; MAX_MARKS of each, unless more
 * than that many files were truncated or removed within a settling time) are
 * counted too. When the server is idle, trim() drops every list and mark
 * (dropAll: a reader in flight sees a new epoch and reads its chunk rows
 * again, which the database still has) and the settling stamps that expired.
 */
import type { VfsCacheCounts } from '../../types.ts'
import type { SliceRecord } from './slice.ts'

const MAX_INODES = 10_000
const MAX_MARKS = 100_000
/** Default bound on the estimated bytes of the lists kept (the oldest inodes go first); metacache= sets it. */
export const SLICE_CACHE_BYTES = 32 * 1024 * 1024
const INODE_BYTES = 288
const LIST_BYTES = 160
const RECORD_BYTES = 96
const MARK_BYTES = 64
/** What the marks and settling stamps can reach beyond the lists' bound. */
const MARKS_LIMIT = 2 * MAX_MARKS * MARK_BYTES
/** The most the estimate can reach by default: the lists' bound, and the marks and settling stamps. */
export const SLICE_CACHE_LIMIT = SLICE_CACHE_BYTES + MARKS_LIMIT

function listBytes(recs: readonly SliceRecord[]): number {
  return LIST_BYTES + recs.length * RECORD_BYTES
}

function inodeBytes(m: ReadonlyMap<number, SliceRecord[]>): number {
  let n = INODE_BYTES
  for (const recs of m.values()) n += listBytes(recs)
  return n
}

export class SliceCache {
  private readonly lists = new Map<bigint, Map<number, SliceRecord[]>>()
  private readonly marks = new Map<bigint, number>()
  private readonly settling = new Map<bigint, number>()
  private counter = 0
  /** Bumped by dropAll: every mark taken before is stale. */
  private epoch = 0
  /** Estimated bytes of `lists` (see the top of the file). */
  private held = 0
  private readonly tally: VfsCacheCounts = { hits: 0, misses: 0, evictions: 0 }

  /** False: lists are never kept (no change notices reach this server). */
  private readonly keep: boolean
  /** The bound on the lists' estimate. */
  private readonly listsLimit: number

  constructor(keep = true, listsBytes = SLICE_CACHE_BYTES) {
    this.keep = keep
    this.listsLimit = listsBytes
  }

  /** The most the estimate can reach: the lists' bound, and the marks and settling stamps. */
  get limit(): number {
    return this.listsLimit + MARKS_LIMIT
  }

  mark(inode: bigint): string {
    return `${this.epoch}:${this.marks.get(inode) ?? 0}`
  }

  get(inode: bigint, idx: number): SliceRecord[] | undefined {
    if (!this.keep) return undefined
    const hit = this.lists.get(inode)?.get(idx)
    if (hit === undefined) this.tally.misses++
    else this.tally.hits++
    return hit
  }

  /** Keep lists fetched under `mark`, unless the inode changed since or is settling. */
  set(inode: bigint, mark: string, lists: ReadonlyMap<number, SliceRecord[]>, now: number): void {
    if (!this.keep || this.mark(inode) !== mark) return
    const until = this.settling.get(inode)
    if (until !== undefined) {
      if (now < until) return
      this.settling.delete(inode)
    }
    let m = this.lists.get(inode)
    if (m === undefined) {
      if (this.lists.size >= MAX_INODES) this.evictOldest()
      m = new Map()
      this.lists.set(inode, m)
      this.held += INODE_BYTES
    }
    for (const [idx, recs] of lists) {
      const old = m.get(idx)
      if (old !== undefined) this.held -= listBytes(old)
      m.set(idx, recs)
      this.held += listBytes(recs)
    }
    // Oldest inodes first; one file's lists alone past the bound are not kept either.
    while (this.held > this.listsLimit && this.lists.size > 0) this.evictOldest()
  }

  drop(inode: bigint): void {
    this.forget(inode)
    if (this.marks.size >= MAX_MARKS) {
      this.dropAll()
      return
    }
    this.marks.set(inode, ++this.counter)
  }

  /**
   * A change made in a transaction this module does not commit (truncate,
   * release run in the caller's): drop now, and cache nothing of the inode
   * for `ms`, by which time the caller has committed.
   */
  dropSettling(inode: bigint, until: number): void {
    this.drop(inode)
    // Stamps go when their inode is next cached: many files removed and never read again would
    // leave theirs, so past the bound the expired ones are swept.
    if (this.settling.size >= MAX_MARKS) this.sweepSettled(Date.now())
    this.settling.set(inode, until)
  }

  dropAll(): void {
    this.lists.clear()
    this.held = 0
    this.marks.clear()
    this.epoch++
  }

  /** Estimated bytes of the lists, marks and settling stamps kept. */
  get bytes(): number {
    return this.held + (this.marks.size + this.settling.size) * MARK_BYTES
  }

  get counts(): Readonly<VfsCacheCounts> {
    return this.tally
  }

  /**
   * Idle: let every list go; returns the bytes let go. As dropAll (a new epoch), not by
   * forgetting the marks alone: a mark that went back to its first value could match one a
   * reader took before a change, and that reader would keep a list from before the change.
   */
  trim(now = Date.now()): number {
    const before = this.bytes
    if (this.lists.size > 0 || this.marks.size > 0) this.dropAll()
    this.sweepSettled(now)
    return before - this.bytes
  }

  /** Forget the settling stamps that ended before `now` (set() would let their inodes be cached anyway). */
  private sweepSettled(now: number): void {
    for (const [inode, until] of this.settling) if (until <= now) this.settling.delete(inode)
  }

  private forget(inode: bigint): void {
    const m = this.lists.get(inode)
    if (m === undefined) return
    this.lists.delete(inode)
    this.held -= inodeBytes(m)
  }

  private evictOldest(): void {
    const first = this.lists.keys().next()
    if (first.done === true) return
    this.forget(first.value)
    this.tally.evictions++
  }
}
