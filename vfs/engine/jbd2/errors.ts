/*
 * Errors about the journal: each carries a stable code, so the caller can tell a journal we do not
 * write (unsupported feature) from a damaged one (bad block, bad checksum) without parsing text.
 */

export type Jbd2ErrorCode =
  /** No 0xC03B3998 at the start of the journal superblock. */
  | 'JBD2_BAD_MAGIC'
  /** A journal superblock whose fields cannot describe a journal of this file system. */
  | 'JBD2_BAD_SUPERBLOCK'
  /** A journal feature (or checksum type) we neither write nor replay; the message names it. */
  | 'JBD2_UNSUPPORTED_FEATURE'
  /** A descriptor, revoke or commit block whose counts, offsets or tags do not fit its block. */
  | 'JBD2_CORRUPT'
  /** A checksum that does not match: superblock, or a transaction that claims to be committed. */
  | 'JBD2_BAD_CHECKSUM'
  /** The journal holds transactions not yet replayed; run recovery first. */
  | 'JBD2_NEEDS_RECOVERY'
  /** A commit larger than the whole log, or the log has no room left for it. */
  | 'JBD2_NO_SPACE'
  /** The journal inode or its block map cannot be used (missing, not extent-mapped, too short). */
  | 'JBD2_BAD_JOURNAL_INODE'
  /** Used after close(), or commit with a tid that does not follow the last one. */
  | 'JBD2_STATE'

export class Jbd2Error extends Error {
  readonly code: Jbd2ErrorCode
  constructor(code: Jbd2ErrorCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'Jbd2Error'
    this.code = code
  }
}
