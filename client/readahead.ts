/*
 * Sequential-access detection per open file (issue 4 point 6), after the
 * Linux readahead state: a read that starts where the previous one ended is
 * sequential; each time sequential reading enters a new block the window
 * doubles (from 2 blocks) up to the limit (Linux: NFS_MAX_READAHEAD = 15 ×
 * rsize, ANCHORS.md §2a); any other read resets the window and asks for
 * nothing. A read of several blocks opens the window to at least twice its
 * size. The window says how many blocks past the last one read should be
 * requested before the application asks for them.
 */

export interface ReadAheadPlan {
  /** Block indexes [from, to) to have fetched. */
  from: number
  to: number
}

export class ReadAhead {
  private readonly maxBlocks: number
  private nextPos = 0
  private window = 0
  private lastBlock = -1

  constructor(maxBlocks: number) {
    this.maxBlocks = maxBlocks
  }

  get windowBlocks(): number {
    return this.window
  }

  /** Note an application read of [pos, end); returns the blocks to prefetch, or null. */
  onRead(pos: number, end: number, blockSize: number): ReadAheadPlan | null {
    const sequential = pos === this.nextPos
    this.nextPos = end
    if (!sequential || this.maxBlocks <= 0 || end <= pos) {
      this.window = 0
      this.lastBlock = -1
      return null
    }
    const last = Math.floor((end - 1) / blockSize)
    if (last !== this.lastBlock) {
      // At least twice the request, as Linux sizes its first window from the request (get_init_ra_size).
      const asked = last - Math.floor(pos / blockSize) + 1
      const grown = this.window === 0 ? 2 : this.window * 2
      this.window = Math.min(Math.max(grown, 2 * asked), this.maxBlocks)
      this.lastBlock = last
    }
    return { from: last + 1, to: last + 1 + this.window }
  }
}
