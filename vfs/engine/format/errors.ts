/*
 * Errors about the bytes of an image: each carries a stable code, so callers
 * and tests can tell a foreign file (bad magic) from a damaged one (corrupt)
 * from one we choose not to read (unsupported feature) without parsing text.
 */

export type FormatErrorCode =
  /** The image ends before a structure we must read (superblock, block). */
  | 'EXT4_TRUNCATED'
  /** No 0xEF53 at byte 1080: not an ext2/3/4 file system. */
  | 'EXT4_BAD_MAGIC'
  /** s_log_block_size outside 1024..65536. */
  | 'EXT4_BAD_BLOCK_SIZE'
  /** Counts or sizes in the superblock that cannot describe a file system. */
  | 'EXT4_BAD_GEOMETRY'
  /** The superblock claims more blocks than the image holds. */
  | 'EXT4_IMAGE_TOO_SMALL'
  /** A feature we do not read is enabled; the message names it. */
  | 'EXT4_UNSUPPORTED_FEATURE'
  /** The journal holds transactions not yet replayed (needs_recovery). */
  | 'EXT4_NEEDS_RECOVERY'
  /** A metadata structure is inconsistent (bad extent magic, rec_len past a block, ...). */
  | 'EXT4_CORRUPT'
  /** A metadata checksum (metadata_csum) does not match its structure, or the structure has no room for one. */
  | 'EXT4_BAD_CHECKSUM'
  /** A request larger than we agree to serve in one call. */
  | 'EXT4_TOO_LARGE'

export class FormatError extends Error {
  readonly code: FormatErrorCode
  constructor(code: FormatErrorCode, message: string) {
    super(message)
    this.name = 'FormatError'
    this.code = code
  }
}

export function corrupt(message: string): FormatError {
  return new FormatError('EXT4_CORRUPT', message)
}
