/*
 * The engine's caches as the server's memory accounting sees them (VfsCache): the metadata block
 * cache (the share of cache= the decoded inodes leave) and the decoded inodes (a count, an eighth
 * of cache=) and the names (fs/name-cache.ts, a thirty-second). All are given back when the server is idle, down to a low mark: what a burst after
 * the pause touches first (the root, the bitmaps and inode table blocks in use) stays, the rest is
 * read again on demand. Nothing else the engine keeps is worth a holder: the extent-node memo is a
 * WeakMap keyed by the cached buffers, each cached inode's attributes and handle live in its slot
 * (inode/inode-table.ts InodeSlot, dropped with it), the directory-leaf memo is process-wide and
 * bounded to 4 MiB, and the last-transaction map COMMIT
 * needs is state (bounded to 65,536 entries), not a cache.
 */
import type { VfsCache } from '../../types.ts'
import type { CacheCounts, CacheStats } from '../txn/buffer-cache.ts'
import type { InodeTable } from '../inode/inode-table.ts'
import type { NameCache } from './name-cache.ts'

/** An idle trim keeps this fraction of a cache's bound (1/16: 16 MiB of the default 256 MiB cache=). */
export const IDLE_KEEP_DIVISOR = 16

/** The transaction manager's side of the block cache (journaled or, read-only, direct). */
export interface BlockCacheOwner {
  readonly cacheStats: CacheStats
  readonly cacheCounts: Readonly<CacheCounts>
  trimCache(lowBytes: number): number
}

/** The block, decoded-inode and name caches of one open image; `inodeBytes` is what one decoded inode is counted as. */
export function engineCaches(blocks: BlockCacheOwner, inodes: InodeTable, inodeBytes: number, names: NameCache): VfsCache[] {
  const blockLimit = blocks.cacheStats.limit
  return [
    {
      name: 'blocks',
      bytes: () => blocks.cacheStats.bytes,
      // A read-only manager opened without a bound (Infinity) has no limit to show.
      ...(Number.isFinite(blockLimit) ? { limit: () => blockLimit } : {}),
      trim: () => blocks.trimCache(Number.isFinite(blockLimit) ? Math.floor(blockLimit / IDLE_KEEP_DIVISOR) : 0),
      counts: () => blocks.cacheCounts,
    },
    {
      name: 'inodes',
      bytes: () => inodes.cacheSize * inodeBytes,
      limit: () => inodes.cacheCapacity * inodeBytes,
      trim: () => inodes.trimCache(Math.floor(inodes.cacheCapacity / IDLE_KEEP_DIVISOR)) * inodeBytes,
    },
    {
      name: 'names',
      bytes: () => names.bytes,
      limit: () => names.limit,
      trim: () => names.trim(Math.floor(names.limit / IDLE_KEEP_DIVISOR)),
      counts: () => ({ ...names.counts }),
    },
  ]
}
