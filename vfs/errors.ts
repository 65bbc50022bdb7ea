/** POSIX error names the storage layer speaks; the server maps them to nfsstat3 in one table. */
export type Errno =
  | 'EPERM'
  | 'ENOENT'
  | 'EIO'
  | 'ENXIO'
  | 'EACCES'
  | 'EEXIST'
  | 'EXDEV'
  | 'ENODEV'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'EINVAL'
  | 'EFBIG'
  | 'ENOSPC'
  | 'EROFS'
  | 'EMLINK'
  | 'ENAMETOOLONG'
  | 'ENOTEMPTY'
  | 'EDQUOT'
  | 'ESTALE'
  | 'ENOTSUP'
  | 'ELOOP'
  | 'EBADF'
  | 'EAGAIN'
  | 'EBUSY'

/** A storage failure the caller is expected to handle (an errno, not a bug). */
export class VfsError extends Error {
  readonly code: Errno
  constructor(code: Errno, message?: string, options?: ErrorOptions) {
    super(message ?? code, options)
    this.name = 'VfsError'
    this.code = code
  }
}

export function vfsError(code: Errno, message?: string): VfsError {
  return new VfsError(code, message)
}

/** True for VfsError and for Node fs errors, which carry the same string codes. */
export function isErrnoError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string'
}
