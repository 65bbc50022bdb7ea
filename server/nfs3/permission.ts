/*
 * Permission checks for AUTH_SYS callers, as Linux does them (RFC 1813 §4.4;
 * knfsd nfsd_permission, the VFS's generic_permission and setattr_prepare).
 * The user is the identity after squashing: uid 0 here really is root.
 * Every check reads the object's attributes fetched for this call, because
 * NFSv3 has no open state (P19).
 */
import type { Attr, SetAttr } from '../../vfs/types.ts'
import type { Nfs3User } from './host.ts'

export const MAY_EXEC = 1
export const MAY_WRITE = 2
export const MAY_READ = 4

export function inGroup(user: Nfs3User, gid: number): boolean {
  return user.gid === gid || user.gids.includes(gid)
}

/**
 * generic_permission: the owner class, else the group class (primary or any
 * supplementary gid), else other — the first class that applies decides.
 * Root (CAP_DAC_OVERRIDE) may read and write anything and search any
 * directory, but executes a non-directory only if some x bit is set.
 */
export function permits(user: Nfs3User, attr: Attr, mask: number): boolean {
  if (user.uid === 0) return (mask & MAY_EXEC) === 0 || attr.type === 'dir' || (attr.mode & 0o111) !== 0
  const bits = user.uid === attr.uid ? attr.mode >> 6 : inGroup(user, attr.gid) ? attr.mode >> 3 : attr.mode
  return (bits & 7 & mask) === mask
}

/**
 * READ (knfsd NFSD_MAY_READ | NFSD_MAY_OWNER_OVERRIDE): the owner may read his
 * file whatever its mode, and execute permission grants reading a regular file
 * (demand paging of binaries; RFC 1813 §4.4, P19).
 */
export function mayRead(user: Nfs3User, attr: Attr): boolean {
  if (user.uid === attr.uid) return true
  return permits(user, attr, MAY_READ) || (attr.type === 'file' && permits(user, attr, MAY_EXEC))
}

/** WRITE and SETATTR of size (NFSD_MAY_WRITE | NFSD_MAY_OWNER_OVERRIDE): the owner always may. */
export function mayWrite(user: Nfs3User, attr: Attr): boolean {
  return user.uid === attr.uid || permits(user, attr, MAY_WRITE)
}

/**
 * Sticky directories (may_delete → check_sticky): only the file's owner, the
 * directory's owner or root may remove or replace an entry.
 */
export function stickyAllows(user: Nfs3User, dir: Attr, victim: Attr): boolean {
  if ((dir.mode & 0o1000) === 0) return true
  return user.uid === 0 || user.uid === victim.uid || user.uid === dir.uid
}

export type SetAttrCheck = { ok: true; set: SetAttr } | { ok: false; status: 'PERM' | 'ACCES' }

/**
 * The mode a non-directory keeps when a caller without CAP_FSETID (anyone
 * but root) writes or truncates it: S_ISUID goes, and S_ISGID when the
 * group may execute (the VFS's should_remove_suid, which knfsd's writes and
 * truncates run under the caller's credentials); null when nothing goes.
 */
export function killedPrivs(user: Nfs3User, attr: Attr): number | null {
  if (user.uid === 0 || attr.type === 'dir') return null
  let mode = attr.mode & ~0o4000
  if ((mode & 0o2010) === 0o2010) mode &= ~0o2000
  return mode === attr.mode ? null : mode
}

/**
 * SETATTR permission, in knfsd's order: fh_verify's access checks first
 * (size and "set times to now" need write permission, the owner overriding:
 * ACCES), then setattr_prepare's ownership rules (PERM): only root changes
 * the uid (the owner may "change" it to itself), the owner may change the gid
 * to one of his groups, only the owner changes the mode or sets explicit times.
 * Returns the SetAttr to apply: chmod by a non-member of the file's group
 * drops S_ISGID, and chown of a non-directory drops S_ISUID (and S_ISGID when
 * group-executable), as knfsd's nfsd_sanitize_attrs and the VFS do; so does
 * a truncate by anyone but root (killedPrivs).
 */
export function checkSetAttr(user: Nfs3User, attr: Attr, set: SetAttr): SetAttrCheck {
  const root = user.uid === 0
  const owner = user.uid === attr.uid
  if (set.size !== undefined && !mayWrite(user, attr)) return { ok: false, status: 'ACCES' }
  const explicitTime = (set.atime !== undefined && set.atime !== 'now') || (set.mtime !== undefined && set.mtime !== 'now')
  const touch = set.atime === 'now' || set.mtime === 'now'
  if (touch && !explicitTime && !root && !mayWrite(user, attr)) return { ok: false, status: 'ACCES' }
  if (set.uid !== undefined && !root && !(owner && set.uid === attr.uid)) return { ok: false, status: 'PERM' }
  if (set.gid !== undefined && !root && !(owner && (set.gid === attr.gid || inGroup(user, set.gid)))) {
    return { ok: false, status: 'PERM' }
  }
  if (set.mode !== undefined && !root && !owner) return { ok: false, status: 'PERM' }
  if (explicitTime && !root && !owner) return { ok: false, status: 'PERM' }

  const out: SetAttr = { ...set }
  if (out.mode !== undefined && !root && !inGroup(user, out.gid ?? attr.gid)) out.mode &= ~0o2000
  if (attr.type !== 'dir' && (set.uid !== undefined || set.gid !== undefined)) {
    const mode = out.mode ?? attr.mode
    let killed = mode & ~0o4000
    if ((killed & 0o010) !== 0) killed &= ~0o2000
    if (killed !== mode || out.mode !== undefined) out.mode = killed
  }
  if (out.size !== undefined && out.mode === undefined) {
    const killed = killedPrivs(user, attr)
    if (killed !== null) out.mode = killed
  }
  return { ok: true, set: out }
}

/** One row of knfsd's nfsd_access tables: the ACCESS bit, the permission it needs, whether a read-only export denies it. */
interface AccessRow {
  bit: number
  mask: number
  write: boolean
}

// RFC 1813 §3.3.4 bits; the rows are knfsd's nfs3_regaccess / nfs3_diraccess / nfs3_anyaccess (fs/nfsd/vfs.c).
const READ = 0x01
const LOOKUP = 0x02
const MODIFY = 0x04
const EXTEND = 0x08
const DELETE = 0x10
const EXECUTE = 0x20

const regAccess: readonly AccessRow[] = [
  { bit: READ, mask: MAY_READ, write: false },
  { bit: EXECUTE, mask: MAY_EXEC, write: false },
  { bit: MODIFY, mask: MAY_WRITE, write: true },
  { bit: EXTEND, mask: MAY_WRITE, write: true },
]
const dirAccess: readonly AccessRow[] = [
  { bit: READ, mask: MAY_READ, write: false },
  { bit: LOOKUP, mask: MAY_EXEC, write: false },
  { bit: MODIFY, mask: MAY_EXEC | MAY_WRITE, write: true },
  { bit: EXTEND, mask: MAY_EXEC | MAY_WRITE, write: true },
  { bit: DELETE, mask: MAY_EXEC | MAY_WRITE, write: true },
]
// Devices, sockets, fifos, symlinks: mode bits only, a read-only export does not matter (NFSD_MAY_LOCAL_ACCESS).
const anyAccess: readonly AccessRow[] = [
  { bit: READ, mask: MAY_READ, write: false },
  { bit: EXECUTE, mask: MAY_EXEC, write: false },
  { bit: MODIFY, mask: MAY_WRITE, write: false },
  { bit: EXTEND, mask: MAY_WRITE, write: false },
]

/**
 * RFC 1813 §3.3.4: the requested bits the caller holds, never a bit not asked
 * for (P22). DELETE on a non-directory and LOOKUP on a non-directory are 0:
 * on UNIX they depend on the parent, or mean nothing.
 */
export function accessBits(user: Nfs3User, attr: Attr, asked: number, readOnly: boolean): number {
  const rows = attr.type === 'file' ? regAccess : attr.type === 'dir' ? dirAccess : anyAccess
  let granted = 0
  for (const row of rows) {
    if ((asked & row.bit) === 0) continue
    if (row.write && readOnly) continue
    if (permits(user, attr, row.mask)) granted |= row.bit
  }
  return granted
}
