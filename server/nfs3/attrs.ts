/*
 * vfs attributes ↔ the RFC 1813 §2.5 attribute types: fattr3, wcc_attr,
 * post_op_attr, wcc_data, and sattr3 → SetAttr.
 */
import { ftype3, time_how } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfstime3, post_op_attr, sattr3, wcc_attr, wcc_data } from '../../xdr/generated/nfs3.ts'
import type { Attr, FileType, SetAttr, Timespec } from '../../vfs/types.ts'

const FTYPE: Readonly<Record<FileType, ftype3>> = {
  file: ftype3.NF3REG,
  dir: ftype3.NF3DIR,
  block: ftype3.NF3BLK,
  char: ftype3.NF3CHR,
  symlink: ftype3.NF3LNK,
  socket: ftype3.NF3SOCK,
  fifo: ftype3.NF3FIFO,
}

const U32_MAX = 0xffff_ffff

/** RFC 1813 §2.5 ftype3 of a vfs file type (undefined for a type that has none: the encoder refuses it). */
export function ftype3Of(type: FileType): ftype3 {
  return FTYPE[type]
}

/** nfstime3 seconds are unsigned 32-bit (RFC 1813 §2.5): clamp what cannot be represented. */
export function nfstimeSeconds(sec: number): number {
  return sec < 0 ? 0 : sec > U32_MAX ? U32_MAX : Math.floor(sec)
}

export function nfstime(t: Timespec): nfstime3 {
  return { seconds: nfstimeSeconds(t.sec), nseconds: t.nsec }
}

/**
 * RFC 1813 §2.5 fattr3. The fsid is the export's id, so fileids are unique per
 * fsid (a client keys its inode cache on (fsid, fileid)).
 */
export function fattr3Of(a: Attr, fsid: bigint): fattr3 {
  return {
    type: ftype3Of(a.type),
    // The type travels in `type`; mode carries only the low 12 bits.
    mode: a.mode & 0o7777,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    used: a.used,
    rdev: { specdata1: a.rdev.major, specdata2: a.rdev.minor },
    fsid,
    fileid: a.fileid,
    atime: nfstime(a.atime),
    mtime: nfstime(a.mtime),
    ctime: nfstime(a.ctime),
  }
}

export function wccAttrOf(a: Attr): wcc_attr {
  return { size: a.size, mtime: nfstime(a.mtime), ctime: nfstime(a.ctime) }
}

export function postOpAttr(a: Attr | null, fsid: bigint): post_op_attr {
  return a === null ? null : fattr3Of(a, fsid)
}

/** RFC 1813 §2.5 wcc_data: `before` only when taken atomically with the change (else null, P6). */
export function wccData(before: Attr | null, after: Attr | null, fsid: bigint): wcc_data {
  return { before: before === null ? null : wccAttrOf(before), after: postOpAttr(after, fsid) }
}

/** RFC 1813 §2.5 sattr3 → SetAttr; absent keys stay absent (DONT_CHANGE). */
export function setAttrOf(s: sattr3): SetAttr {
  const out: SetAttr = {}
  if (s.mode !== null) out.mode = s.mode & 0o7777
  if (s.uid !== null) out.uid = s.uid
  if (s.gid !== null) out.gid = s.gid
  if (s.size !== null) out.size = s.size
  if (s.atime.set_it === time_how.SET_TO_SERVER_TIME) out.atime = 'now'
  else if (s.atime.set_it === time_how.SET_TO_CLIENT_TIME) out.atime = { sec: s.atime.atime.seconds, nsec: s.atime.atime.nseconds }
  if (s.mtime.set_it === time_how.SET_TO_SERVER_TIME) out.mtime = 'now'
  else if (s.mtime.set_it === time_how.SET_TO_CLIENT_TIME) out.mtime = { sec: s.mtime.mtime.seconds, nsec: s.mtime.mtime.nseconds }
  return out
}
