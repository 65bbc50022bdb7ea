/*
 * The clean block cache (DESIGN.md §3.10, issue 4 point 5): file data in
 * fixed blocks (see file-options.ts blockSizeOf), keyed by handle hex and
 * block index, in an lru-cache bounded in bytes. A block shorter than the
 * block size ends at the file's end as it was when read.
 *
 * Blocks are valid only while the file's attributes are those they were
 * cached under (the stamp: size, mtime, ctime). The data path drops a file's
 * blocks when the attribute cache reports a change seen from the server
 * (nfs(5) DATA AND METADATA COHERENCE) and when an open finds attributes
 * other than the stamp (close-to-open). Dirty data never lives here: it is in
 * the write-back state (writeback.ts) until the server has it on stable
 * storage, so eviction can never lose a write.
 */
import { LRUCache } from 'lru-cache'
import type { fattr3 } from '../../xdr/generated/nfs3.ts'

export interface CachedBlock {
  data: Buffer
  /** Fetched by read-ahead and not yet read by the application (counts one read-ahead hit). */
  readahead: boolean
}

export interface BlockStamp {
  size: bigint
  mtime: string
  ctime: string
}

export function stampOf(a: fattr3): BlockStamp {
  return { size: a.size, mtime: `${a.mtime.seconds}.${a.mtime.nseconds}`, ctime: `${a.ctime.seconds}.${a.ctime.nseconds}` }
}

function sameStamp(a: BlockStamp, b: BlockStamp): boolean {
  return a.size === b.size && a.mtime === b.mtime && a.ctime === b.ctime
}

export interface BlockCacheCounters {
  add(group: string, key: string, n?: number): void
}

export class BlockCache {
  readonly blockSize: number
  private readonly lru: LRUCache<string, CachedBlock>
  /** Block indexes cached per file, to drop a file without scanning the cache. */
  private readonly byFile = new Map<string, Set<number>>()
  private readonly stamps = new Map<string, BlockStamp>()
  private readonly counters: BlockCacheCounters

  constructor(maxBytes: number, blockSize: number, counters: BlockCacheCounters) {
    this.blockSize = blockSize
    this.counters = counters
    this.lru = new LRUCache<string, CachedBlock>({
      maxSize: maxBytes,
      // lru-cache wants a positive size; an empty block (a file of size 0) still takes an entry.
      sizeCalculation: b => Math.max(1, b.data.length),
      dispose: (_b, key, reason) => {
        if (reason === 'evict') this.counters.add('blockCache', 'evictions')
        if (reason !== 'set') this.unindex(key)
      },
    })
  }

  get(key: string, index: number): CachedBlock | undefined {
    return this.lru.get(`${key}:${index}`)
  }

  has(key: string, index: number): boolean {
    return this.lru.has(`${key}:${index}`)
  }

  /**
   * Cache a block read under attributes `stamp`; blocks cached under other
   * attributes go first, unless `ours` (the file is being written by this
   * client: the other blocks carry our writes and the change is ours).
   */
  set(key: string, index: number, block: CachedBlock, stamp: BlockStamp | undefined, ours = false): void {
    if (stamp !== undefined && !ours) this.validate(key, stamp)
    if (stamp !== undefined && (ours || !this.stamps.has(key))) this.stamps.set(key, stamp)
    this.lru.set(`${key}:${index}`, block)
    let set = this.byFile.get(key)
    if (set === undefined) {
      set = new Set()
      this.byFile.set(key, set)
    }
    set.add(index)
  }

  /** Replace a cached block's data (a write patched it): same entry, new size. */
  replace(key: string, index: number, data: Buffer): void {
    const b = this.lru.peek(`${key}:${index}`)
    if (b !== undefined) this.lru.set(`${key}:${index}`, { data, readahead: b.readahead })
  }

  /** Keep the blocks if `stamp` is what they were cached under; else drop them. Returns whether they were kept. */
  validate(key: string, stamp: BlockStamp): boolean {
    const cur = this.stamps.get(key)
    if (cur === undefined || sameStamp(cur, stamp)) return true
    this.dropFile(key)
    return false
  }

  /** The file's blocks are current under these attributes (our own change). */
  restamp(key: string, stamp: BlockStamp): void {
    if (this.byFile.has(key)) this.stamps.set(key, stamp)
  }

  /** Drop every block of a file. */
  dropFile(key: string): void {
    const set = this.byFile.get(key)
    this.stamps.delete(key)
    if (set === undefined) return
    this.counters.add('blockCache', 'drops', set.size)
    for (const i of [...set]) this.lru.delete(`${key}:${i}`)
    this.byFile.delete(key)
  }

  /** Drop the blocks of a file from index `from` on (a truncate). */
  dropFrom(key: string, from: number): void {
    const set = this.byFile.get(key)
    if (set === undefined) return
    for (const i of [...set]) if (i >= from) this.lru.delete(`${key}:${i}`)
  }

  /** Blocks cached for a file (tests, diagnostics). */
  blocksOf(key: string): number {
    return this.byFile.get(key)?.size ?? 0
  }

  get bytes(): number {
    return this.lru.calculatedSize
  }

  /** Drop every block (all are clean; the client calls it when idle). Returns the bytes let go. */
  trim(): number {
    const bytes = this.lru.calculatedSize
    this.lru.clear()
    return bytes
  }

  private unindex(lruKey: string): void {
    const colon = lruKey.lastIndexOf(':')
    const key = lruKey.slice(0, colon)
    const set = this.byFile.get(key)
    if (set === undefined) return
    set.delete(Number(lruKey.slice(colon + 1)))
    if (set.size === 0) {
      this.byFile.delete(key)
      this.stamps.delete(key)
    }
  }
}
