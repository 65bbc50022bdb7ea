/*
 * Why mkfs refused: each reason has a stable code, so the command line and
 * tests can tell a bad option from a device that is too small or already in
 * use without parsing the text.
 */

export type MkfsErrorCode =
  /** An option outside what we format (block size, bytes per inode, journal size, label, UUID). */
  | 'MKFS_BAD_OPTION'
  /** The device cannot hold a file system (or its journal) of this geometry. */
  | 'MKFS_TOO_SMALL'
  /** More blocks than we place in memory. */
  | 'MKFS_TOO_LARGE'
  /** The inodes asked for do not fit the groups. */
  | 'MKFS_TOO_MANY_INODES'
  /** A placement that would need a structure we do not write (a journal of more than 4 extents). */
  | 'MKFS_UNSUPPORTED'
  /** The device already holds a file system and formatting was not forced. */
  | 'MKFS_HAS_FS'

export class MkfsError extends Error {
  readonly code: MkfsErrorCode
  constructor(code: MkfsErrorCode, message: string) {
    super(message)
    this.name = 'MkfsError'
    this.code = code
  }
}
