/*
 * Where checksum verification plugs in. With metadata_csum every structure
 * the reader decodes carries a crc32c (superblock, group descriptors, inodes,
 * extent blocks, directory blocks and their htree nodes; checksums.rst). The
 * reader hands each raw structure to a Verifier before it trusts it:
 * csum-verifier.ts checks the sums (the default for such images), NO_VERIFY
 * accepts everything (images without checksums, or reading a damaged one).
 */

export type MetadataKind = 'superblock' | 'group-desc' | 'inode' | 'extent-block' | 'dir-block' | 'dx-block' | 'block-bitmap' | 'inode-bitmap'

export interface MetadataContext {
  /** Physical block the bytes came from (the superblock: 0 or 1, as its block). */
  block: number
  /** Inode number, for inodes and for blocks that belong to one (extent, directory). */
  ino?: number
  /** The inode's i_generation, which its checksum and its blocks' checksums chain after the inode number. */
  generation?: number
  /** Group number, for group descriptors and bitmaps. */
  group?: number
  /** For bitmaps: the checksum their group descriptor holds (bg_*_bitmap_csum_lo, | hi << 16 in a 64-byte descriptor). */
  stored?: number
}

export interface Verifier {
  verify(kind: MetadataKind, bytes: Buffer, ctx: MetadataContext): void
}

/** Accepts everything. */
export const NO_VERIFY: Verifier = {
  verify() {},
}
