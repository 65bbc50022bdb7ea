/*
 * THE one errno → nfsstat3 table, as the kernel's nfserrno (fs/nfsd/vfs.c).
 * Backends speak errno (VfsError, or Node fs errors with the same codes); the
 * protocol layer translates here and nowhere else. A procedure that needs a
 * different answer special-cases it in its own file before calling toNfsStat.
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { Logger } from '../logger.ts'

type ErrStat = Exclude<nfsstat3, 0>

const table: Readonly<Record<string, ErrStat>> = {
  EPERM: nfsstat3.NFS3ERR_PERM,
  ENOENT: nfsstat3.NFS3ERR_NOENT,
  EIO: nfsstat3.NFS3ERR_IO,
  ENXIO: nfsstat3.NFS3ERR_NXIO,
  E2BIG: nfsstat3.NFS3ERR_FBIG, // knfsd
  EACCES: nfsstat3.NFS3ERR_ACCES,
  // knfsd: an unlink of a busy (mounted-on) name is nfserr_file_open, which nfsd3_map_status sends as ACCES.
  EBUSY: nfsstat3.NFS3ERR_ACCES,
  EEXIST: nfsstat3.NFS3ERR_EXIST,
  EXDEV: nfsstat3.NFS3ERR_XDEV,
  ENODEV: nfsstat3.NFS3ERR_NODEV,
  ENOTDIR: nfsstat3.NFS3ERR_NOTDIR,
  EISDIR: nfsstat3.NFS3ERR_ISDIR,
  EINVAL: nfsstat3.NFS3ERR_INVAL,
  EFBIG: nfsstat3.NFS3ERR_FBIG,
  ENOSPC: nfsstat3.NFS3ERR_NOSPC,
  EROFS: nfsstat3.NFS3ERR_ROFS,
  EMLINK: nfsstat3.NFS3ERR_MLINK,
  ENAMETOOLONG: nfsstat3.NFS3ERR_NAMETOOLONG,
  ENOTEMPTY: nfsstat3.NFS3ERR_NOTEMPTY,
  EDQUOT: nfsstat3.NFS3ERR_DQUOT,
  ESTALE: nfsstat3.NFS3ERR_STALE,
  // knfsd: a descriptor that went bad is a stale object, not a malformed handle.
  EBADF: nfsstat3.NFS3ERR_STALE,
  ENOTSUP: nfsstat3.NFS3ERR_NOTSUPP,
  EOPNOTSUPP: nfsstat3.NFS3ERR_NOTSUPP,
  // RFC 1813 §2.6 JUKEBOX: "temporarily unable to complete"; knfsd sends it for these.
  EAGAIN: nfsstat3.NFS3ERR_JUKEBOX,
  EWOULDBLOCK: nfsstat3.NFS3ERR_JUKEBOX,
  ETIMEDOUT: nfsstat3.NFS3ERR_JUKEBOX,
  ENOMEM: nfsstat3.NFS3ERR_JUKEBOX,
  ETXTBSY: nfsstat3.NFS3ERR_IO,
  ENFILE: nfsstat3.NFS3ERR_SERVERFAULT,
  // Our backends never follow symlinks, so ELOOP means "a symlink where another type was
  // expected" (O_NOFOLLOW). knfsd answers that case (nfserr_symlink) with NFS3ERR_INVAL
  // in nfsd3_map_status (fs/nfsd/nfs3proc.c).
  ELOOP: nfsstat3.NFS3ERR_INVAL,
}

/** POSIX error names (ENOENT, EOPNOTSUPP…), not Node's ERR_* codes, which are bugs. */
const ERRNO_NAME = /^E[A-Z0-9]+$/

const loggedUnknown = new Set<string>()

/** The errno name an error carries, or null if it is not an errno error (then it is a bug). */
export function errnoOf(err: unknown): string | null {
  if (!(err instanceof Error)) return null
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && ERRNO_NAME.test(code) ? code : null
}

/**
 * The status for a failed vfs call. An errno we have no row for becomes
 * NFS3ERR_IO (knfsd's fallback), logged once per code; anything that is not
 * an errno error is a bug: NFS3ERR_SERVERFAULT, logged with its stack.
 */
export function toNfsStat(err: unknown, log: Logger): ErrStat {
  const code = errnoOf(err)
  if (code === null) {
    log.error({ err }, 'nfs3: unexpected exception in a procedure')
    return nfsstat3.NFS3ERR_SERVERFAULT
  }
  const stat = table[code]
  if (stat !== undefined) return stat
  if (!loggedUnknown.has(code)) {
    loggedUnknown.add(code)
    log.warn({ code }, 'nfs3: no nfsstat3 for this errno; answering NFS3ERR_IO')
  }
  return nfsstat3.NFS3ERR_IO
}
