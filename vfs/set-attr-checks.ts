/*
 * The SETATTR checks every backend applies before changing anything
 * (RFC 1813 §3.3.2): sizes only on regular files and within a signed 64-bit
 * off_t, timestamps well formed.
 */
import { VfsError } from './errors.ts'
import type { FileType, SetAttr, Timespec } from './types.ts'

/** capabilities().maxFileSize: the largest size a signed 64-bit off_t holds (a host file system may refuse less: EFBIG). */
export const MAX_FILE_SIZE = 2n ** 63n - 1n

/**
 * Seconds may be negative: NFS cannot send such a time (nfstime3 seconds are
 * unsigned), but a restored tar member from before 1970 and a primary's
 * replicated file carry one, and each backend keeps what its format holds
 * (the engine clamps to ext4's range, as the kernel does).
 */
export function checkTime(t: Timespec | 'now' | undefined): void {
  if (t === undefined || t === 'now') return
  if (!Number.isSafeInteger(t.sec) || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= 1e9) {
    throw new VfsError('EINVAL', 'bad timestamp')
  }
}

export function checkSetAttr(type: FileType, set: SetAttr): void {
  if (set.size !== undefined) {
    if (type === 'dir') throw new VfsError('EISDIR')
    if (type !== 'file') throw new VfsError('EINVAL', 'size on a non-regular file')
    if (set.size < 0n) throw new VfsError('EINVAL')
    if (set.size > MAX_FILE_SIZE) throw new VfsError('EFBIG')
  }
  checkTime(set.atime)
  checkTime(set.mtime)
}
