/*
 * Name checks every procedure taking a filename3 applies before the vfs sees
 * it (RFC 1813 §3.2 and P15). Names are bytes.
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { ErrStat } from './context.ts'

/** PATHCONF name_max with no_trunc TRUE: longer names are NAMETOOLONG (RFC 1813 §3.3.20). */
export const NFS3_NAME_MAX = 255

export function isDot(name: Buffer): boolean {
  return name.length === 1 && name[0] === 0x2e
}

export function isDotDot(name: Buffer): boolean {
  return name.length === 2 && name[0] === 0x2e && name[1] === 0x2e
}

/**
 * A name that could name an entry: RFC 1813 §3.3.3 and P15 — an empty name is
 * ACCES; so is one the server cannot represent (`/` or NUL); more than
 * name_max bytes is NAMETOOLONG.
 */
export function nameStatus(name: Buffer): ErrStat | null {
  if (name.length === 0) return nfsstat3.NFS3ERR_ACCES
  if (name.length > NFS3_NAME_MAX) return nfsstat3.NFS3ERR_NAMETOOLONG
  if (name.includes(0x2f) || name.includes(0)) return nfsstat3.NFS3ERR_ACCES
  return null
}

/** A name for a new entry: `.` and `..` always exist (EXIST, as knfsd's isdotent check in nfsd_create). */
export function newNameStatus(name: Buffer): ErrStat | null {
  const s = nameStatus(name)
  if (s !== null) return s
  return isDot(name) || isDotDot(name) ? nfsstat3.NFS3ERR_EXIST : null
}
