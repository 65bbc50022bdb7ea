/*
 * Attribute changes held while a file this mount created is still open for
 * writing. A copy sets what it copied after the data: `cp -a` utimensat
 * then fchmod, `tar x` utimensat, fchown and fchmod, on the open file
 * before close(2). Like the data, mode and times wait for the file's next
 * FLUSH or FSYNC, where they go after the data as one SETATTR
 * (close-to-open: another client sees them once close returns; a failure
 * is close's error, as for data). A mode change, which cp -a and tar x make
 * last, sends them at once after the data instead, so the close finds that
 * SETATTR done or under way (its failure still fails the close; a change
 * held after it goes at the flush). Only on a file we created and have kept
 * open: its owner on the server is this caller, so the server will not
 * refuse what the kernel allowed.
 *
 * The owner never waits (a chown the server refuses, as it does root's
 * under root_squash, must fail the chown, not the close). A chown or chmod
 * that changes nothing on such a file (tar's fchown to the owner it already
 * has, rsync's fchmod to the mode it created) needs no call at all: its only
 * effect on the server would be ctime. Size never waits (truncation stamps
 * mtime). Anything else on the file (a write, an open, a link, a SETATTR
 * that cannot wait) sends what is held first, so the server sees changes in
 * the order they were made.
 */
import { time_how } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfstime3, sattr3 } from '../../xdr/generated/nfs3.ts'
import { FATTR } from './abi.ts'

export interface PendingAttrs {
  mode?: number
  atime?: nfstime3
  mtime?: nfstime3
  /** When the last change was held, by our clock: the ctime shown until the server's is known. */
  ctime: nfstime3
}

/** fuse_setattr_in.valid: FATTR_LOCKOWNER (the caller's lock owner; nothing to set). */
const FATTR_LOCKOWNER = 1 << 9
const NO_VALUE = FATTR.FH | FATTR_LOCKOWNER
const MAY_WAIT = FATTR.MODE | FATTR.ATIME | FATTR.MTIME
const SET_ID = 0o6000

export interface SetattrValues {
  valid: number
  mode: number
  uid: number
  gid: number
  atime: nfstime3
  mtime: nfstime3
}

/** Whether this SETATTR may wait for the flush: mode and explicit times only. */
export function mayWait(s: SetattrValues): boolean {
  const sets = s.valid & ~NO_VALUE
  return sets !== 0 && (sets & ~MAY_WAIT) === 0
}

/**
 * Whether this SETATTR of mode and owner leaves a file we created exactly as
 * it is (attributes `a`, with what is held): no call needed. A chown is a
 * no-op only when no set-id bit is there for it to clear.
 */
export function changesNothing(s: SetattrValues, a: fattr3, held: PendingAttrs | undefined): boolean {
  const sets = s.valid & ~NO_VALUE
  if (sets === 0 || (sets & ~(FATTR.MODE | FATTR.UID | FATTR.GID)) !== 0) return false
  const mode = (held?.mode ?? a.mode) & 0o7777
  if ((sets & FATTR.MODE) !== 0 && (s.mode & 0o7777) !== mode) return false
  const chown = (sets & (FATTR.UID | FATTR.GID)) !== 0
  if (chown && (mode & SET_ID) !== 0) return false
  if ((sets & FATTR.UID) !== 0 && s.uid !== a.uid) return false
  if ((sets & FATTR.GID) !== 0 && s.gid !== a.gid) return false
  return true
}

/** What is pending after this SETATTR (later values replace earlier ones), held at nowMs. */
export function mergePending(p: PendingAttrs | undefined, s: SetattrValues, nowMs: number): PendingAttrs {
  const seconds = Math.floor(nowMs / 1000)
  const out: PendingAttrs = { ...p, ctime: { seconds, nseconds: Math.round((nowMs - seconds * 1000) * 1e6) } }
  if ((s.valid & FATTR.MODE) !== 0) out.mode = s.mode & 0o7777
  if ((s.valid & FATTR.ATIME) !== 0) out.atime = s.atime
  if ((s.valid & FATTR.MTIME) !== 0) out.mtime = s.mtime
  return out
}

/** The one SETATTR that applies everything pending. */
export function sattrOf(p: PendingAttrs): sattr3 {
  return {
    mode: p.mode ?? null,
    uid: null,
    gid: null,
    size: null,
    atime: p.atime === undefined ? { set_it: time_how.DONT_CHANGE } : { set_it: time_how.SET_TO_CLIENT_TIME, atime: p.atime },
    mtime: p.mtime === undefined ? { set_it: time_how.DONT_CHANGE } : { set_it: time_how.SET_TO_CLIENT_TIME, mtime: p.mtime },
  }
}

/** The attributes the file will have once what is pending is applied. */
export function withPending(a: fattr3, p: PendingAttrs): fattr3 {
  return {
    ...a,
    mode: p.mode ?? a.mode,
    atime: p.atime ?? a.atime,
    mtime: p.mtime ?? a.mtime,
    ctime: p.ctime,
  }
}
