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

/** What BlockPrefetch needs of an open file (NfsFile.readBlock). */
export interface BlockSource {
  readBlock(index: number): Promise<Buffer>
}

/**
 * Whole blocks in order for a sequential consumer (a read stream, a copy),
 * each READ sent ahead of its turn. The window starts at 2 blocks and
 * doubles, up to `max`, only when the consumer finds its next block still
 * on the way: a consumer slower than the server (a local disk) keeps a
 * small window, so few block buffers circulate; a slow link opens it wide.
 */
export class BlockPrefetch {
  private readonly file: BlockSource
  private readonly end: number
  private readonly max: number
  private next = 0
  private window = 2
  private taken = 0
  private readonly ahead: { block: Promise<Buffer>; ready: boolean }[] = []

  /** Blocks [from, end). */
  constructor(file: BlockSource, from: number, end: number, max: number) {
    this.file = file
    this.next = from
    this.end = end
    this.max = Math.max(1, max)
    this.window = Math.min(2, this.max)
  }

  /** The window now (tests, stats). */
  get windowBlocks(): number {
    return this.window
  }

  /** The next block, or null past the end. A failed READ rejects when its block's turn comes. */
  take(): Promise<Buffer> | null {
    this.fill()
    const head = this.ahead.shift()
    if (head === undefined) return null
    // The first block is always on the way: only later waits say the READs fall behind.
    if (!head.ready && this.taken > 0) this.window = Math.min(this.window * 2, this.max)
    this.taken++
    this.fill()
    return head.block
  }

  /** Forget what is still ahead (the consumer stopped early); the READs in flight finish unheard. */
  stop(): void {
    this.ahead.length = 0
    this.next = this.end
  }

  private fill(): void {
    while (this.ahead.length < this.window && this.next < this.end) {
      const e = { block: this.file.readBlock(this.next++), ready: false }
      const settled = (): void => {
        e.ready = true
      }
      e.block.then(settled, settled)
      this.ahead.push(e)
    }
  }
}
