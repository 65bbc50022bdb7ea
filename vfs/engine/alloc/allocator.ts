import type { MetaTxn } from '../txn/txn.ts'

/**
 * Block and inode allocation as the extent, directory and namespace code sees it. Changes go
 * through the caller's transaction handle (bitmaps, group descriptors with their checksums, the
 * superblock's free counters). Freed blocks become allocatable again only after the freeing
 * transaction is durable (see txn.ts).
 */
export interface Allocator {
  /**
   * Up to `count` contiguous free blocks, as near after `goal` as possible (0: anywhere; the
   * caller passes the block after a file's last one, so files stay contiguous). Returns the run
   * found, at least 1 block; throws an Error with code ENOSPC when none is free.
   */
  allocBlocks(h: MetaTxn, goal: number, count: number): Promise<{ start: number; count: number }>
  /** Free [start, start + count); `metadata` ones are also revoked from the journal. */
  freeBlocks(h: MetaTxn, start: number, count: number, metadata: boolean): Promise<void>
  /** A free inode number, near the parent's group (directories spread, as ext4's Orlov). ENOSPC when none. */
  allocInode(h: MetaTxn, parentIno: number, isDir: boolean): Promise<number>
  freeInode(h: MetaTxn, ino: number, isDir: boolean): Promise<void>
}
