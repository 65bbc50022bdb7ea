/* fattr3 → a POSIX-like stat object, and sattr3 builders for SETATTR/CREATE/MKDIR. */
import { ftype3, time_how } from '../xdr/generated/nfs3.ts'
import type { fattr3, nfstime3, sattr3, set_atime, set_mtime } from '../xdr/generated/nfs3.ts'

export type FileType = 'file' | 'directory' | 'block' | 'char' | 'symlink' | 'socket' | 'fifo'

const TYPES: Readonly<Record<number, FileType>> = {
  [ftype3.NF3REG]: 'file',
  [ftype3.NF3DIR]: 'directory',
  [ftype3.NF3BLK]: 'block',
  [ftype3.NF3CHR]: 'char',
  [ftype3.NF3LNK]: 'symlink',
  [ftype3.NF3SOCK]: 'socket',
  [ftype3.NF3FIFO]: 'fifo',
}

export function toDate(t: nfstime3): Date {
  return new Date(t.seconds * 1000 + Math.floor(t.nseconds / 1e6))
}

/** A Date, or seconds since the epoch as fs.utimes takes them. */
export type TimeLike = Date | number

export function toNfsTime(t: TimeLike): nfstime3 {
  const ms = t instanceof Date ? t.getTime() : t * 1000
  const seconds = Math.floor(ms / 1000)
  return { seconds, nseconds: Math.round((ms - seconds * 1000) * 1e6) }
}

export class NfsStats {
  readonly fh: Buffer
  /** The attributes as the server sent them. */
  readonly attrs: fattr3
  readonly type: FileType
  /** Permission bits (07777); fattr3 carries the type separately. */
  readonly mode: number
  readonly nlink: number
  readonly uid: number
  readonly gid: number
  readonly size: bigint
  readonly used: bigint
  readonly rdev: { major: number; minor: number }
  readonly fsid: bigint
  readonly fileid: bigint
  readonly atime: Date
  readonly mtime: Date
  readonly ctime: Date

  constructor(fh: Buffer, a: fattr3) {
    this.fh = fh
    this.attrs = a
    this.type = TYPES[a.type] ?? 'file'
    this.mode = a.mode & 0o7777
    this.nlink = a.nlink
    this.uid = a.uid
    this.gid = a.gid
    this.size = a.size
    this.used = a.used
    this.rdev = { major: a.rdev.specdata1, minor: a.rdev.specdata2 }
    this.fsid = a.fsid
    this.fileid = a.fileid
    this.atime = toDate(a.atime)
    this.mtime = toDate(a.mtime)
    this.ctime = toDate(a.ctime)
  }

  isFile(): boolean {
    return this.type === 'file'
  }

  isDirectory(): boolean {
    return this.type === 'directory'
  }

  isSymbolicLink(): boolean {
    return this.type === 'symlink'
  }
}

export interface SetAttrs {
  mode?: number
  uid?: number
  gid?: number
  size?: bigint | number
  /** A time, or 'server' for the server's clock (SET_TO_SERVER_TIME). */
  atime?: TimeLike | 'server'
  mtime?: TimeLike | 'server'
}

function atimeOf(t: TimeLike | 'server' | undefined): set_atime {
  if (t === undefined) return { set_it: time_how.DONT_CHANGE }
  if (t === 'server') return { set_it: time_how.SET_TO_SERVER_TIME }
  return { set_it: time_how.SET_TO_CLIENT_TIME, atime: toNfsTime(t) }
}

function mtimeOf(t: TimeLike | 'server' | undefined): set_mtime {
  if (t === undefined) return { set_it: time_how.DONT_CHANGE }
  if (t === 'server') return { set_it: time_how.SET_TO_SERVER_TIME }
  return { set_it: time_how.SET_TO_CLIENT_TIME, mtime: toNfsTime(t) }
}

export function sattr(s: SetAttrs = {}): sattr3 {
  return {
    mode: s.mode ?? null,
    uid: s.uid ?? null,
    gid: s.gid ?? null,
    size: s.size === undefined ? null : BigInt(s.size),
    atime: atimeOf(s.atime),
    mtime: mtimeOf(s.mtime),
  }
}
