/*
 * CHECKSUM VERIFICATION PLUGS IN HERE. With metadata_csum every structure
 * the reader decodes carries a crc32c (superblock, group descriptors, inodes,
 * extent blocks, directory blocks and their htree nodes; checksums.rst). The
 * reader hands each raw structure to a Verifier before decoding it; the
 * default one accepts everything. When vfs/engine/crc32c.ts lands, a
 * verifier computing those sums throws FormatError('EXT4_CORRUPT') (or a
 * checksum-specific code) naming the structure and block.
 */

export type MetadataKind = 'superblock' | 'group-desc' | 'inode' | 'extent-block' | 'dir-block' | 'dx-block'

export interface MetadataContext {
  /** Physical block the bytes came from (the superblock: 0 or 1, as its block). */
  block: number
  /** Inode number, for inodes and for blocks that belong to one (extent, directory). */
  ino?: number
  /** The inode's i_generation, which the inode's own checksum seeds with. */
  generation?: number
  /** Group number, for group descriptors. */
  group?: number
}

export interface Verifier {
  verify(kind: MetadataKind, bytes: Buffer, ctx: MetadataContext): void
}

/** Accepts everything: no verification yet. */
export const NO_VERIFY: Verifier = {
  verify() {},
}
