/*
 * Sequential-read detection per file, for read-ahead into the block cache.
 * An NFS client reading a file in order sends READs of consecutive ranges,
 * several in flight, so they may arrive a little out of order: a read that
 * starts within `slack` of where the last one ended counts as sequential.
 * From the second sequential read on, the window ahead of the reader doubles
 * (one block, two, four, …) up to `maxWindow` bytes, as the Linux page
 * cache's read-ahead grows (mm/readahead.c, our own code); a read elsewhere
 * starts over. The whole window is returned on every sequential read: what
 * is already cached or being fetched costs a map lookup (BlockCache.warm),
 * and a block skipped because too much was in flight is asked for again by
 * the next read. State is kept for at most `maxFiles` files (the least
 * recently read are forgotten): memory is bounded whatever the clients do.
 */

interface Stream {
  /** Where the last sequential read ended (the reader's position). */
  next: number
  /** Sequential reads in a row. */
  streak: number
  /** Bytes the window covers past `next`. */
  window: number
}

export interface ReadAheadOptions {
  /** Largest window, bytes (0: no read-ahead). */
  maxWindow: number
  /** The first window (one block). */
  minWindow: number
  maxFiles?: number
  /** How far from the last end a read may start and still count as sequential (default four reads or four windows' first block, whichever is more). */
  slack?: number
}

export class ReadAhead {
  private readonly files = new Map<bigint, Stream>()
  private readonly o: ReadAheadOptions & { maxFiles: number }

  constructor(o: ReadAheadOptions) {
    this.o = { maxFiles: 1024, ...o }
  }

  /**
   * A read of [off, off + n) of a file of `size` bytes arrived. Returns the
   * range to prefetch now, or undefined.
   */
  access(inode: bigint, off: number, n: number, size: number): { from: number; to: number } | undefined {
    if (this.o.maxWindow <= 0) return undefined
    const end = off + n
    const slack = this.o.slack ?? 4 * Math.max(n, this.o.minWindow)
    let s = this.files.get(inode)
    if (s !== undefined) this.files.delete(inode)
    if (s === undefined || off > s.next + slack || end < s.next - slack) {
      s = { next: end, streak: 0, window: 0 }
    } else {
      s.next = Math.max(s.next, end)
      s.streak++
      s.window = Math.min(this.o.maxWindow, s.window === 0 ? this.o.minWindow : s.window * 2)
    }
    this.files.set(inode, s)
    if (this.files.size > this.o.maxFiles) {
      const oldest = this.files.keys().next()
      if (oldest.done !== true) this.files.delete(oldest.value)
    }
    if (s.streak === 0) return undefined
    const to = Math.min(size, s.next + s.window)
    if (to <= s.next) return undefined
    return { from: s.next, to }
  }

  /** The file changed or is gone: start over. */
  forget(inode: bigint): void {
    this.files.delete(inode)
  }

  get tracked(): number {
    return this.files.size
  }
}
