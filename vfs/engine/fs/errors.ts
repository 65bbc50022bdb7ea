import { VfsError } from '../../errors.ts'
import type { Errno } from '../../errors.ts'

/** Codes the parts throw that are answers, not damage: passed through as the same errno. */
const ANSWERS = new Set<string>(['ENOENT', 'EEXIST', 'ENOSPC', 'ENAMETOOLONG', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EINVAL', 'EFBIG', 'EMLINK', 'EROFS', 'ESTALE', 'EDQUOT'])

/**
 * Everything else — a FormatError (a checksum or structure the image should not have), a
 * BlockDevError, a TxnError (the journal aborted) — is EIO to the client; the message keeps the
 * block number for the log.
 */
export function toVfsError(err: unknown): VfsError {
  if (err instanceof VfsError) return err
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && ANSWERS.has(code)) return new VfsError(code as Errno, (err as Error).message, { cause: err })
  return new VfsError('EIO', err instanceof Error ? err.message : String(err), { cause: err })
}
