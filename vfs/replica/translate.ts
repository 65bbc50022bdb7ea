/*
 * Small helpers of the replicating layer: attributes carried from backend
 * ids to vids, SETATTR with 'now' resolved, and the errors that mean an
 * object is gone.
 */
import { isErrnoError } from '../errors.ts'
import type { Attr, DirChange, FileRef, SetAttr } from '../types.ts'
import type { ResolvedSetAttr } from './change.ts'

/** `attr` as the layer shows it: the fileid and generation are the vid's. */
export function outAttr(attr: Attr, vid: FileRef): Attr {
  return { ...attr, fileid: vid.id, gen: vid.gen }
}

export function outDir(dc: DirChange, vid: FileRef): DirChange {
  return { before: dc.before === null ? null : outAttr(dc.before, vid), after: outAttr(dc.after, vid) }
}

/** A SETATTR as the primary made it: 'now' is the time the backend stored. */
export function resolveSetAttr(set: SetAttr, after: Attr): ResolvedSetAttr {
  const out: ResolvedSetAttr = {}
  if (set.mode !== undefined) out.mode = set.mode
  if (set.uid !== undefined) out.uid = set.uid
  if (set.gid !== undefined) out.gid = set.gid
  if (set.size !== undefined) out.size = set.size
  if (set.atime !== undefined) out.atime = set.atime === 'now' ? after.atime : set.atime
  if (set.mtime !== undefined) out.mtime = set.mtime === 'now' ? after.mtime : set.mtime
  return out
}

/** ESTALE or ENOENT: the object (or name) is not there. */
export function isGone(err: unknown): boolean {
  return isErrnoError(err) && (err.code === 'ESTALE' || err.code === 'ENOENT')
}

export function sameRef(a: FileRef, b: FileRef): boolean {
  return a.id === b.id && a.gen === b.gen
}

export const DOT = Buffer.from('.')
export const DOTDOT = Buffer.from('..')
