/*
 * NFSv3 attributes for client cache tests: a 10-byte regular file (fileid 7,
 * fsid 1, mode 644, times at 100 s) with whatever fields a test sets.
 */
import { ftype3 } from '../../xdr/generated/nfs3.ts'
import type { fattr3 } from '../../xdr/generated/nfs3.ts'

export function fattr(p: Partial<fattr3> = {}): fattr3 {
  const t0 = { seconds: 100, nseconds: 0 }
  return {
    type: ftype3.NF3REG, mode: 0o644, nlink: 1, uid: 0, gid: 0, size: 10n, used: 10n,
    rdev: { specdata1: 0, specdata2: 0 }, fsid: 1n, fileid: 7n, atime: t0, mtime: t0, ctime: t0, ...p,
  }
}
