/*
 * NFS → FUSE values: fattr3 as struct fuse_attr (RFC 1813 §2.5 ftype3 and
 * mode bits become st_mode; specdata3 becomes a Linux dev_t), and any error
 * the client raises as the errno the kernel hands to the application
 * (nfsstat3 values are errno numbers; a soft mount's RPC timeout is EIO, as
 * on a Linux soft mount).
 */
import { constants } from 'node:os'
import { ftype3 } from '../../xdr/generated/nfs3.ts'
import type { fattr3 } from '../../xdr/generated/nfs3.ts'
import { MountError, NfsError } from '../errors.ts'
import { LockError } from '../lock/errors.ts'
import type { FuseAttr } from './abi.ts'
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from './abi.ts'

const TYPE_BITS: Readonly<Record<number, number>> = {
  [ftype3.NF3REG]: S_IFREG,
  [ftype3.NF3DIR]: S_IFDIR,
  [ftype3.NF3BLK]: S_IFBLK,
  [ftype3.NF3CHR]: S_IFCHR,
  [ftype3.NF3LNK]: S_IFLNK,
  [ftype3.NF3SOCK]: S_IFSOCK,
  [ftype3.NF3FIFO]: S_IFIFO,
}

/** The S_IF* bits of an ftype3. */
export function typeBits(t: number): number {
  return TYPE_BITS[t] ?? S_IFREG
}

/** Linux new_encode_dev: 12-bit major, 20-bit minor. */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0
}

export function splitdev(dev: number): { major: number; minor: number } {
  return { major: (dev & 0xfff00) >>> 8, minor: (dev & 0xff) | ((dev >>> 12) & 0xfff00) }
}

/** fattr3 → fuse_attr; size overrides the server's (data held locally beyond its end). */
export function fuseAttr(a: fattr3, blksize: number, size: bigint = a.size): FuseAttr {
  return {
    ino: a.fileid,
    size,
    // st_blocks counts 512-byte units of space used (RFC 1813 §2.5: used is in bytes).
    blocks: (a.used + 511n) / 512n,
    atime: { s: a.atime.seconds, ns: a.atime.nseconds },
    mtime: { s: a.mtime.seconds, ns: a.mtime.nseconds },
    ctime: { s: a.ctime.seconds, ns: a.ctime.nseconds },
    mode: (TYPE_BITS[a.type] ?? S_IFREG) | (a.mode & 0o7777),
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: makedev(a.rdev.specdata1, a.rdev.specdata2),
    blksize,
  }
}

/** A FUSE-layer condition with its errno name (EBADF for an unknown file handle…). */
export class FuseError extends Error {
  readonly code: string
  constructor(code: string, message?: string) {
    super(message ?? code)
    this.name = 'FuseError'
    this.code = code
  }
}

const EIO = constants.errno.EIO

export function errnoNumber(name: string): number {
  return (constants.errno as Record<string, number | undefined>)[name] ?? EIO
}

/** The errno for the kernel: NfsError/MountError/LockError by their errno; RPC failures (soft timeout, closed) and the rest EIO. */
export function errnoFor(err: unknown): number {
  if (err instanceof NfsError || err instanceof MountError || err instanceof LockError) return errnoNumber(err.errno)
  if (err instanceof FuseError) return errnoNumber(err.code)
  return EIO
}
