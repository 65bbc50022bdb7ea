/*
 * SETATTR on a pinned host object (RFC 1813 §3.3.2). Everything goes
 * through the pinned fd: `/proc/self/fd/<O_PATH fd>` reaches exactly that
 * inode (a symlink's own inode for a symlink), so a name swapped on the
 * host meanwhile cannot redirect a chmod/chown outside the export.
 * Order as the kernel needs it: size, then owner (chown clears setuid and
 * setgid bits), then mode, then times (truncation stamps mtime).
 */
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import type { SetAttr } from '../types.ts'
import type { IoFiles } from './io-files.ts'
import type { Pinned } from './resolver.ts'
import { chmodNow, chownNow, fdPath, fstatNow, ftruncate, toVfsError } from './sys.ts'
import { setTimes } from './times.ts'
import { checkSetAttr } from '../set-attr-checks.ts'

export { checkSetAttr, MAX_FILE_SIZE } from '../set-attr-checks.ts'

export async function applySetAttr(io: IoFiles, p: Pinned, set: SetAttr): Promise<BigIntStats> {
  checkSetAttr(p.type, set)
  try {
    if (set.size !== undefined) {
      // Node takes a safe integer length; beyond 2^53 no Linux file system goes anyway.
      if (set.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new VfsError('EFBIG')
      const f = io.acquire(p, true)
      try {
        await ftruncate(f.fd, Number(set.size))
      } finally {
        io.release(f)
      }
    }
    if (set.uid !== undefined || set.gid !== undefined) chownNow(fdPath(p.fd), set.uid ?? -1, set.gid ?? -1)
    // Linux keeps no mode on symlinks (lchmod is EOPNOTSUPP); knfsd ignores the mode for them too.
    if (set.mode !== undefined && p.type !== 'symlink') chmodNow(fdPath(p.fd), set.mode & 0o7777)
    if (set.atime !== undefined || set.mtime !== undefined) await setTimes(p.fd, set.atime, set.mtime)
    return fstatNow(p.fd)
  } catch (err) {
    throw toVfsError(err)
  }
}
