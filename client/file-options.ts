/*
 * Knobs of the data path (block cache, read-ahead, write-back) and their
 * defaults, chosen after the Linux client (ANCHORS.md §2a): read-ahead up to
 * 16 blocks (Linux: 15 × rsize), a dirty limit that forces write-back and
 * COMMIT, and a short timer for data nobody flushes.
 */

export interface FileDataOptions {
  /**
   * Clean block cache bound in bytes (default 64 MiB: read-ahead needs two windows; a mount
   * defaults to 32 MiB, its kernel keeps a page cache of its own).
   */
  blockCacheBytes?: number
  /** Read-ahead window ceiling in bytes (default 16 blocks); 0 disables read-ahead. */
  readahead?: number
  /** Dirty + unstable bytes of the mount before write() waits for write-back and COMMIT (default 64 MiB). */
  dirtyLimitBytes?: number
  /** WRITE calls in flight per mount (default 8). */
  writeSlots?: number
  /** READ calls in flight per mount (default 16). */
  readSlots?: number
  /** Dirty data older than this is written out even if its block is not full (ms, default 500). */
  writebackDelayMs?: number
}

export const DEFAULT_BLOCK_CACHE_BYTES = 64 * 1024 * 1024

export interface ResolvedFileDataOptions {
  blockSize: number
  blockCacheBytes: number
  readaheadBlocks: number
  dirtyLimitBytes: number
  writeSlots: number
  readSlots: number
  writebackDelayMs: number
}

/**
 * The block: min(rsize, wsize) rounded down to a multiple of 4 KiB (at least
 * one page), so that one block is one READ and one full block is one WRITE.
 */
export function blockSizeOf(rsize: number, wsize: number): number {
  const m = Math.min(rsize, wsize)
  return m < 4096 ? m : m - (m % 4096)
}

export function resolveFileDataOptions(o: FileDataOptions, rsize: number, wsize: number): ResolvedFileDataOptions {
  const blockSize = blockSizeOf(rsize, wsize)
  return {
    blockSize,
    blockCacheBytes: Math.max(o.blockCacheBytes ?? DEFAULT_BLOCK_CACHE_BYTES, blockSize),
    readaheadBlocks: Math.floor((o.readahead ?? 16 * blockSize) / blockSize),
    dirtyLimitBytes: Math.max(o.dirtyLimitBytes ?? 64 * 1024 * 1024, 2 * blockSize),
    writeSlots: Math.max(1, o.writeSlots ?? 8),
    readSlots: Math.max(1, o.readSlots ?? 16),
    writebackDelayMs: Math.max(0, o.writebackDelayMs ?? 500),
  }
}
