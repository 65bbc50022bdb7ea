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
 */
import type { SliceRecord } from './slice.ts'

const MAX_INODES = 10_000
const MAX_MARKS = 100_000

export class SliceCache {
  private readonly lists = new Map<bigint, Map<number, SliceRecord[]>>()
  private readonly marks = new Map<bigint, number>()
  private readonly settling = new Map<bigint, number>()
  private counter = 0
  /** Bumped by dropAll: every mark taken before is stale. */
  private epoch = 0

  /** False: lists are never kept (no change notices reach this server). */
  private readonly keep: boolean

  constructor(keep = true) {
    this.keep = keep
  }

  mark(inode: bigint): string {
    return `${this.epoch}:${this.marks.get(inode) ?? 0}`
  }

  get(inode: bigint, idx: number): SliceRecord[] | undefined {
    if (!this.keep) return undefined
    return this.lists.get(inode)?.get(idx)
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
      if (this.lists.size >= MAX_INODES) {
        const first = this.lists.keys().next()
        if (first.done !== true) this.lists.delete(first.value)
      }
      m = new Map()
      this.lists.set(inode, m)
    }
    for (const [idx, recs] of lists) m.set(idx, recs)
  }

  drop(inode: bigint): void {
    this.lists.delete(inode)
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
    this.settling.set(inode, until)
  }

  dropAll(): void {
    this.lists.clear()
    this.marks.clear()
    this.epoch++
  }
}
