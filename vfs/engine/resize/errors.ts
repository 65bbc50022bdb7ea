/*
 * Why a resize refused: stable codes, so the command line and tests tell a shrink from a file
 * system that must be checked first without parsing the text.
 */

export type ResizeErrorCode =
  /** The size asked for is smaller than the file system: we only grow. */
  | 'RESIZE_SHRINK'
  /** Not an ext4 file system we can read (no magic, bad superblock checksum). */
  | 'RESIZE_BAD_FS'
  /** A feature whose layout we do not grow (meta_bg, bigalloc, sparse_super2, 32-byte-odd descriptors). */
  | 'RESIZE_UNSUPPORTED'
  /** Not cleanly unmounted, errors recorded, orphans pending or the journal not empty: fsck first. */
  | 'RESIZE_NOT_CLEAN'
  /** More group descriptor blocks needed than the file system has plus its reserved ones. */
  | 'RESIZE_NO_GDT_ROOM'
  /** Beyond the block or inode counts the format holds. */
  | 'RESIZE_TOO_LARGE'
  /** The journal has no room for the metadata transaction. */
  | 'RESIZE_JOURNAL_FULL'

export class ResizeError extends Error {
  readonly code: ResizeErrorCode
  constructor(code: ResizeErrorCode, message: string) {
    super(message)
    this.name = 'ResizeError'
    this.code = code
  }
}
