/*
 * The FUSE kernel ABI (Linux include/uapi/linux/fuse.h, protocol 7.31 as
 * answered; the kernel here offers 7.45): opcodes, INIT flags, and the
 * little-endian struct layouts we read and write. Every request is one
 * fuse_in_header (40 bytes) plus a body; every reply one fuse_out_header
 * (16 bytes) plus a body, written with one write(2).
 */

export const FUSE_KERNEL_VERSION = 7
/** The minor we answer (7.31: max_pages, explicit invalidation; no DAX, no extensions). */
export const FUSE_MINOR = 31
export const FUSE_ROOT_ID = 1n
export const FUSE_MIN_READ_BUFFER = 8192
export const IN_HEADER_SIZE = 40
export const OUT_HEADER_SIZE = 16

export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9, UNLINK: 10,
  RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17, RELEASE: 18, FSYNC: 20,
  SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28,
  RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32, SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36,
  BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40, NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43,
  READDIRPLUS: 44, RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47, SYNCFS: 50, TMPFILE: 51, STATX: 52,
} as const

export const OP_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]))

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  FLOCK_LOCKS: 1 << 10,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
} as const

/** fuse_setattr_in.valid bits. */
export const FATTR = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8,
} as const

/** fuse_open_out.open_flags. */
export const FOPEN_DIRECT_IO = 1 << 0
export const FOPEN_KEEP_CACHE = 1 << 1

/** fuse_lk_in.lk_flags: the lock is a flock(2) lock (whole file, owned by the open file). */
export const FUSE_LK_FLOCK = 1 << 0
/** fuse_release_in.release_flags: drop the flock locks of lock_owner. */
export const FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1
/** struct flock l_type values (asm-generic/fcntl.h). */
export const F_RDLCK = 0
export const F_WRLCK = 1
export const F_UNLCK = 2
/** The kernel's OFFSET_MAX: a lock whose end is this runs to the end of the file. */
export const OFFSET_MAX = 0x7fff_ffff_ffff_ffffn

/** fuse_lk_in (48 bytes): the open file, the kernel's lock owner id, the lock (end inclusive), flags. */
export interface LkIn {
  fh: bigint
  owner: bigint
  start: bigint
  end: bigint
  type: number
  pid: number
  flags: number
}

export function decodeLkIn(body: Buffer): LkIn {
  return {
    fh: body.readBigUInt64LE(0),
    owner: body.readBigUInt64LE(8),
    start: body.readBigUInt64LE(16),
    end: body.readBigUInt64LE(24),
    type: body.readUInt32LE(32),
    pid: body.readUInt32LE(36),
    flags: body.readUInt32LE(40),
  }
}

/** fuse_lk_out: one fuse_file_lock (24 bytes). */
export function lkOut(type: number, start: bigint, end: bigint, pid: number): Buffer {
  const b = Buffer.alloc(24)
  b.writeBigUInt64LE(start, 0)
  b.writeBigUInt64LE(end, 8)
  b.writeUInt32LE(type, 16)
  b.writeUInt32LE(pid >>> 0, 20)
  return b
}

/** Notification codes (out header with unique 0, error = code). */
export const NOTIFY_INVAL_INODE = 2
export const NOTIFY_INVAL_ENTRY = 3

export const RENAME_NOREPLACE = 1

export const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000

export interface InHeader {
  len: number
  opcode: number
  unique: bigint
  nodeid: bigint
  uid: number
  gid: number
  pid: number
}

export function decodeInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    nodeid: b.readBigUInt64LE(16),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  }
}

export function outHeader(bodyLength: number, errno: number, unique: bigint): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE)
  b.writeUInt32LE(OUT_HEADER_SIZE + bodyLength, 0)
  b.writeInt32LE(errno === 0 ? 0 : -errno, 4)
  b.writeBigUInt64LE(unique, 8)
  return b
}

/** A body that reads names (NUL-terminated) and fixed fields in order. */
export class BodyReader {
  private readonly b: Buffer
  private off: number

  constructor(b: Buffer, off = 0) {
    this.b = b
    this.off = off
  }

  u32(): number {
    const v = this.b.readUInt32LE(this.off)
    this.off += 4
    return v
  }

  u64(): bigint {
    const v = this.b.readBigUInt64LE(this.off)
    this.off += 8
    return v
  }

  skip(n: number): this {
    this.off += n
    return this
  }

  /** A NUL-terminated name (the kernel always terminates; a missing NUL takes the rest). */
  name(): string {
    let end = this.b.indexOf(0, this.off)
    if (end < 0) end = this.b.length
    const s = this.b.toString('utf8', this.off, end)
    this.off = end + 1
    return s
  }

  /** The remaining bytes (a view). */
  rest(): Buffer {
    return this.b.subarray(this.off)
  }
}

/** fuse_attr (88 bytes). Times as seconds and nanoseconds. */
export interface FuseAttr {
  ino: bigint
  size: bigint
  blocks: bigint
  atime: { s: number; ns: number }
  mtime: { s: number; ns: number }
  ctime: { s: number; ns: number }
  /** Type and permission bits (st_mode). */
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  blksize: number
}

export const ATTR_SIZE = 88
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE

function writeAttr(b: Buffer, off: number, a: FuseAttr): void {
  b.writeBigUInt64LE(a.ino, off)
  b.writeBigUInt64LE(a.size, off + 8)
  b.writeBigUInt64LE(a.blocks, off + 16)
  b.writeBigUInt64LE(BigInt(a.atime.s), off + 24)
  b.writeBigUInt64LE(BigInt(a.mtime.s), off + 32)
  b.writeBigUInt64LE(BigInt(a.ctime.s), off + 40)
  b.writeUInt32LE(a.atime.ns, off + 48)
  b.writeUInt32LE(a.mtime.ns, off + 52)
  b.writeUInt32LE(a.ctime.ns, off + 56)
  b.writeUInt32LE(a.mode >>> 0, off + 60)
  b.writeUInt32LE(a.nlink >>> 0, off + 64)
  b.writeUInt32LE(a.uid >>> 0, off + 68)
  b.writeUInt32LE(a.gid >>> 0, off + 72)
  b.writeUInt32LE(a.rdev >>> 0, off + 76)
  b.writeUInt32LE(a.blksize >>> 0, off + 80)
  // flags (FUSE_ATTR_SUBMOUNT...): none.
  b.writeUInt32LE(0, off + 84)
}

/** A cache timeout in milliseconds as the kernel's seconds + nanoseconds. */
function validity(ms: number): { s: bigint; ns: number } {
  const t = Math.max(0, ms)
  const s = Math.floor(t / 1000)
  return { s: BigInt(s), ns: Math.round((t - s * 1000) * 1e6) }
}

export interface Entry {
  nodeid: bigint
  generation: bigint
  entryValidMs: number
  attrValidMs: number
  attr: FuseAttr
}

function writeEntry(b: Buffer, off: number, e: Entry): void {
  const ev = validity(e.entryValidMs)
  const av = validity(e.attrValidMs)
  b.writeBigUInt64LE(e.nodeid, off)
  b.writeBigUInt64LE(e.generation, off + 8)
  b.writeBigUInt64LE(ev.s, off + 16)
  b.writeBigUInt64LE(av.s, off + 24)
  b.writeUInt32LE(ev.ns, off + 32)
  b.writeUInt32LE(av.ns, off + 36)
  writeAttr(b, off + 40, e.attr)
}

/*
 * The two replies of most requests (entries and attributes) are cut from
 * Node's shared pool (allocUnsafe) and written whole, padding included: at
 * 104 and 128 bytes, Buffer.alloc made each its own zeroed ArrayBuffer
 * (malloc, free, and the collector's sweep of it), ~450 ns against ~50-100
 * (node microbench, session 38), for 4 of a copied file's 8 replies.
 */
export function entryOut(e: Entry): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT_SIZE)
  writeEntry(b, 0, e)
  return b
}

export function attrOut(attr: FuseAttr, validMs: number): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE)
  const v = validity(validMs)
  b.writeBigUInt64LE(v.s, 0)
  b.writeUInt32LE(v.ns, 8)
  b.writeUInt32LE(0, 12) // padding
  writeAttr(b, 16, attr)
  return b
}

export function openOut(fh: bigint, openFlags: number): Buffer {
  const b = Buffer.alloc(16)
  b.writeBigUInt64LE(fh, 0)
  b.writeUInt32LE(openFlags, 8)
  return b
}

export function writeOut(size: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(size, 0)
  return b
}

export interface KStatfs {
  blocks: bigint
  bfree: bigint
  bavail: bigint
  files: bigint
  ffree: bigint
  bsize: number
  namelen: number
  frsize: number
}

export function statfsOut(s: KStatfs): Buffer {
  const b = Buffer.alloc(80)
  b.writeBigUInt64LE(s.blocks, 0)
  b.writeBigUInt64LE(s.bfree, 8)
  b.writeBigUInt64LE(s.bavail, 16)
  b.writeBigUInt64LE(s.files, 24)
  b.writeBigUInt64LE(s.ffree, 32)
  b.writeUInt32LE(s.bsize, 40)
  b.writeUInt32LE(s.namelen, 44)
  b.writeUInt32LE(s.frsize, 48)
  return b
}

export interface InitIn {
  major: number
  minor: number
  maxReadahead: number
  flags: number
}

export function decodeInitIn(body: Buffer): InitIn {
  return { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: body.readUInt32LE(12) }
}

export interface InitOut {
  maxReadahead: number
  flags: number
  maxBackground: number
  congestionThreshold: number
  maxWrite: number
  maxPages: number
}

/** fuse_init_out (64 bytes at 7.23 and later); time_gran 1 ns. */
export function initOut(o: InitOut): Buffer {
  const b = Buffer.alloc(64)
  b.writeUInt32LE(FUSE_KERNEL_VERSION, 0)
  b.writeUInt32LE(FUSE_MINOR, 4)
  b.writeUInt32LE(o.maxReadahead, 8)
  b.writeUInt32LE(o.flags >>> 0, 12)
  b.writeUInt16LE(o.maxBackground, 16)
  b.writeUInt16LE(o.congestionThreshold, 18)
  b.writeUInt32LE(o.maxWrite, 20)
  b.writeUInt32LE(1, 24)
  b.writeUInt16LE(o.maxPages, 28)
  return b
}

/** fuse_notify_inval_entry_out and the name (NUL-terminated): the kernel drops its entry for name in parent. */
export function invalEntryOut(parent: bigint, name: string): Buffer {
  const n = Buffer.from(name)
  const b = Buffer.alloc(16 + n.length + 1)
  b.writeBigUInt64LE(parent, 0)
  b.writeUInt32LE(n.length, 8)
  n.copy(b, 16)
  return b
}

/** fuse_notify_inval_inode_out: offset -1 invalidates the attributes only (no page locks taken). */
export function invalInodeOut(nodeid: bigint, offset: bigint, length: bigint): Buffer {
  const b = Buffer.alloc(24)
  b.writeBigUInt64LE(nodeid, 0)
  b.writeBigInt64LE(offset, 8)
  b.writeBigInt64LE(length, 16)
  return b
}

/** d_type of a dirent from st_mode. */
export function direntType(mode: number): number {
  return (mode & S_IFMT) >>> 12
}

const align8 = (n: number): number => (n + 7) & ~7

/** fuse_dirent size for a name (24-byte head + name, padded to 8). */
export function direntSize(name: Buffer): number {
  return align8(24 + name.length)
}

export function direntplusSize(name: Buffer): number {
  return align8(ENTRY_OUT_SIZE + 24 + name.length)
}

/** Write a fuse_dirent at off; returns the next offset. */
export function putDirent(b: Buffer, off: number, ino: bigint, next: bigint, type: number, name: Buffer): number {
  b.writeBigUInt64LE(ino, off)
  b.writeBigUInt64LE(next, off + 8)
  b.writeUInt32LE(name.length, off + 16)
  b.writeUInt32LE(type, off + 20)
  name.copy(b, off + 24)
  const end = off + direntSize(name)
  b.fill(0, off + 24 + name.length, end)
  return end
}

/** Write a fuse_direntplus at off (entry null: nodeid 0, the kernel makes no inode of it); returns the next offset. */
export function putDirentplus(b: Buffer, off: number, e: Entry | null, ino: bigint, next: bigint, type: number, name: Buffer): number {
  if (e === null) b.fill(0, off, off + ENTRY_OUT_SIZE)
  else writeEntry(b, off, e)
  putDirent(b, off + ENTRY_OUT_SIZE, ino, next, type, name)
  return off + direntplusSize(name)
}
