/*
 * What directory mutation needs from the rest of the engine: the directory's
 * blocks (the extent code maps and grows them; tests stand in with a block
 * range of their own) and the file system's parameters that shape a
 * directory block (checksums, hash seed, which htree features exist).
 */
import { hasFeature } from '../format/features.ts'
import { blockSize } from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import { csumSeed, hasMetadataCsum } from '../reader/csum-verifier.ts'
import type { MetaTxn } from '../txn/txn.ts'

/** One directory's blocks, as its inode maps them. */
export interface DirFile {
  readonly ino: number
  /** i_generation: directory block checksums chain it after the inode number. */
  readonly generation: number
  /** Blocks in the directory (i_size / block size). */
  blockCount(): number
  /** Physical block of logical block lblk (0 <= lblk < blockCount()). */
  physical(h: MetaTxn, lblk: number): Promise<number>
  /**
   * Grow the directory by one block at its end: allocate it, map it, raise
   * i_size. The caller fills it (through h.fresh(pblk)). ENOSPC when the
   * file system is full.
   */
  append(h: MetaTxn): Promise<{ lblk: number; pblk: number }>
  /** EXT4_INDEX_FL: the directory has an htree. */
  isIndexed(): boolean
  /** Set EXT4_INDEX_FL (make_indexed_dir). */
  setIndexed(h: MetaTxn): Promise<void>
}

/** The superblock's say on directory blocks. */
export interface DirFs {
  blockSize: number
  /** metadata_csum: the per-fs checksum seed; undefined without checksums (no tails). */
  csumSeed: number | undefined
  /** dir_index: a directory outgrowing one block becomes hashed. */
  dirIndex: boolean
  /** large_dir: three htree index levels instead of two. */
  largeDir: boolean
  /** filetype: entries record the file type. */
  fileType: boolean
  hashSeed: Buffer
  /** s_def_hash_version, for new htree roots. */
  defHashVersion: number
  /** s_flags (signed/unsigned char hashing). */
  sbFlags: number
}

export function dirFsOf(sb: Superblock): DirFs {
  return {
    blockSize: blockSize(sb),
    csumSeed: hasMetadataCsum(sb) ? csumSeed(sb) : undefined,
    dirIndex: hasFeature(sb, 'compat', 'dir_index'),
    largeDir: hasFeature(sb, 'incompat', 'large_dir'),
    fileType: hasFeature(sb, 'incompat', 'filetype'),
    hashSeed: sb.hashSeed,
    defHashVersion: sb.defHashVersion,
    sbFlags: sb.flags,
  }
}
