/*
 * Inodes (inodes.rst): the 128-byte base, then i_extra_isize bytes of the
 * large inode (checksum high half, the nanosecond/epoch words of the times,
 * creation time, version high). A field of the extra part exists only when
 * i_extra_isize covers it, so each is decoded conditionally.
 */

export const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000

/** i_flags bits the reader looks at. */
export const INODE_FLAGS = {
  INDEX: 0x1000,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000,
  ENCRYPT: 0x800,
  CASEFOLD: 0x40000000,
} as const

export const GOOD_OLD_INODE_SIZE = 128
/** Offsets of the base and large inode fields (inodes.rst). */
const EXTRA_ISIZE_OFFSET = 0x80
/** i_block: 60 bytes, the extent tree root or a fast symlink's target. */
export const I_BLOCK_OFFSET = 0x28
export const I_BLOCK_SIZE = 60
/** Where the two halves of the inode checksum live (crc32c of fs uuid, inode number, generation, inode). */
export const INODE_CHECKSUM_LO_OFFSET = 0x7c
export const INODE_CHECKSUM_HI_OFFSET = 0x82

/** A time as ext4 stores it: signed 32-bit seconds, extended by two epoch bits, and nanoseconds. */
export interface Ext4Time {
  /** Seconds since 1970, may be negative (before) or past 2038 (epoch bits). */
  sec: number
  nsec: number
}

export interface Inode {
  mode: number
  uid: number
  gid: number
  size: number
  atime: Ext4Time
  ctime: Ext4Time
  mtime: Ext4Time
  /** Creation time; undefined when the inode has no room for it. */
  crtime: Ext4Time | undefined
  dtime: number
  linksCount: number
  /** i_blocks as stored (lo + hi with huge_file); see blocksIn512. */
  blocks: number
  flags: number
  /** i_version (lo, and hi when present). */
  version: number
  generation: number
  fileAcl: number
  /** The 60 raw bytes of i_block. */
  block: Buffer
  /** 0 for a 128-byte inode. */
  extraIsize: number
  /** The two halves as stored; verification plugs in at the reader (see reader/verify.ts). */
  checksumLo: number
  checksumHi: number | undefined
  projid: number | undefined
}

/**
 * A copy in memory of its own, not a slice of Node's shared 8 KiB Buffer pool: decoded inodes are
 * cached, and each cached 60-byte slice would keep its whole slab alive (thousands of cached
 * inodes pinned as many slabs).
 */
export function ownCopy(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(src.length)
  out.set(src)
  return out
}

function time(buf: Buffer, secAt: number, extraAt: number | undefined): Ext4Time {
  const lo = buf.readInt32LE(secAt)
  if (extraAt === undefined) return { sec: lo, nsec: 0 }
  const extra = buf.readUInt32LE(extraAt)
  // The two low bits extend the signed seconds by multiples of 2^32 (inodes.rst, "Inode Timestamps").
  return { sec: lo + (extra & 3) * 2 ** 32, nsec: extra >>> 2 }
}

/**
 * Decode an inode of inodeSize bytes at offset. hugeFile: the superblock's
 * huge_file feature, which gives i_blocks its high 16 bits. extra_isize must
 * fit in the inode (the caller gets a RangeError otherwise and reports it).
 */
export function decodeInode(buf: Buffer, offset: number, inodeSize: number, hugeFile: boolean): Inode {
  if (offset + inodeSize > buf.length || inodeSize < GOOD_OLD_INODE_SIZE) throw new RangeError('inode past the buffer')
  const b = buf.subarray(offset, offset + inodeSize)
  const extraIsize = inodeSize > GOOD_OLD_INODE_SIZE ? b.readUInt16LE(EXTRA_ISIZE_OFFSET) : 0
  if (GOOD_OLD_INODE_SIZE + extraIsize > inodeSize || extraIsize % 4 !== 0) throw new RangeError(`i_extra_isize ${extraIsize} does not fit a ${inodeSize}-byte inode`)
  const has = (at: number): boolean => GOOD_OLD_INODE_SIZE + extraIsize >= at + 4
  const blocksHi = hugeFile ? b.readUInt16LE(0x74) : 0
  return {
    mode: b.readUInt16LE(0x0),
    uid: b.readUInt16LE(0x2) + b.readUInt16LE(0x78) * 2 ** 16,
    size: b.readUInt32LE(0x4) + b.readUInt32LE(0x6c) * 2 ** 32,
    atime: time(b, 0x8, has(0x8c) ? 0x8c : undefined),
    ctime: time(b, 0xc, has(0x84) ? 0x84 : undefined),
    mtime: time(b, 0x10, has(0x88) ? 0x88 : undefined),
    crtime: has(0x90) ? time(b, 0x90, has(0x94) ? 0x94 : undefined) : undefined,
    dtime: b.readUInt32LE(0x14),
    gid: b.readUInt16LE(0x18) + b.readUInt16LE(0x7a) * 2 ** 16,
    linksCount: b.readUInt16LE(0x1a),
    blocks: b.readUInt32LE(0x1c) + blocksHi * 2 ** 32,
    flags: b.readUInt32LE(0x20),
    version: b.readUInt32LE(0x24) + (has(0x98) ? b.readUInt32LE(0x98) * 2 ** 32 : 0),
    block: ownCopy(b.subarray(I_BLOCK_OFFSET, I_BLOCK_OFFSET + I_BLOCK_SIZE)),
    generation: b.readUInt32LE(0x64),
    fileAcl: b.readUInt32LE(0x68) + b.readUInt16LE(0x76) * 2 ** 32,
    extraIsize,
    checksumLo: b.readUInt16LE(INODE_CHECKSUM_LO_OFFSET),
    checksumHi: extraIsize >= 4 ? b.readUInt16LE(INODE_CHECKSUM_HI_OFFSET) : undefined,
    projid: has(0x9c) ? b.readUInt32LE(0x9c) : undefined,
  }
}

/** i_blocks in 512-byte units: with HUGE_FILE_FL the count is in file system blocks (inodes.rst). */
export function blocksIn512(inode: Inode, blockSize: number): number {
  return (inode.flags & INODE_FLAGS.HUGE_FILE) !== 0 ? inode.blocks * (blockSize / 512) : inode.blocks
}

export function fileType(mode: number): number {
  return mode & S_IFMT
}

export function isDir(inode: Inode): boolean {
  return fileType(inode.mode) === S_IFDIR
}

export function isReg(inode: Inode): boolean {
  return fileType(inode.mode) === S_IFREG
}

export function isSymlink(inode: Inode): boolean {
  return fileType(inode.mode) === S_IFLNK
}

/** The seconds a large inode holds: signed 32 bits plus two epoch bits, 1901-12-13 to 2446-05-10. */
export const EXT4_TIME_MIN_SEC = -(2 ** 31)
export const EXT4_TIME_MAX_SEC = 3 * 2 ** 32 + 2 ** 31 - 1

/** A time as a large inode stores it: seconds clamped to that range, as the kernel does. */
export function ext4Time(t: Ext4Time): Ext4Time {
  return { sec: Math.max(EXT4_TIME_MIN_SEC, Math.min(EXT4_TIME_MAX_SEC, t.sec)), nsec: t.nsec }
}

/** The seconds word and the extra word (epoch bits, nanoseconds) of a time, the inverse of time() above. */
function encodeTime(t: Ext4Time, withExtra: boolean): { lo: number; extra: number } {
  // Without an extra word only signed 32-bit seconds exist: clamp, as the kernel does.
  if (!withExtra) return { lo: Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, t.sec)), extra: 0 }
  const epoch = Math.max(0, Math.min(3, Math.floor((t.sec + 2 ** 31) / 2 ** 32)))
  const lo = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, t.sec - epoch * 2 ** 32))
  return { lo, extra: ((t.nsec << 2) | epoch) >>> 0 }
}

/**
 * Write inode's fields into the inodeSize-byte record at raw[offset], in place: bytes no field
 * covers (osd1/osd2 spares, in-inode extended attributes after i_extra_isize) keep what they held.
 * Fields of the large inode are written only where inode.extraIsize covers them; the checksum is
 * not computed here (it depends on the inode number: inode/inode-table.ts).
 */
export function encodeInode(inode: Inode, raw: Buffer, offset: number, inodeSize: number, hugeFile: boolean): void {
  if (offset + inodeSize > raw.length || inodeSize < GOOD_OLD_INODE_SIZE) throw new RangeError('inode past the buffer')
  if (GOOD_OLD_INODE_SIZE + inode.extraIsize > inodeSize || inode.extraIsize % 4 !== 0) throw new RangeError(`i_extra_isize ${inode.extraIsize} does not fit a ${inodeSize}-byte inode`)
  if (inode.block.length !== I_BLOCK_SIZE) throw new RangeError(`i_block of ${inode.block.length} bytes`)
  if (!hugeFile && inode.blocks >= 2 ** 32) throw new RangeError(`i_blocks ${inode.blocks} needs huge_file`)
  const b = raw.subarray(offset, offset + inodeSize)
  const has = (at: number): boolean => inodeSize > GOOD_OLD_INODE_SIZE && GOOD_OLD_INODE_SIZE + inode.extraIsize >= at + 4
  const u32 = (v: number, at: number): void => {
    b.writeUInt32LE(v % 2 ** 32, at)
  }
  b.writeUInt16LE(inode.mode, 0x0)
  b.writeUInt16LE(inode.uid & 0xffff, 0x2)
  b.writeUInt16LE(Math.floor(inode.uid / 2 ** 16) & 0xffff, 0x78)
  u32(inode.size, 0x4)
  u32(Math.floor(inode.size / 2 ** 32), 0x6c)
  for (const [t, secAt, extraAt] of [
    [inode.atime, 0x8, 0x8c],
    [inode.ctime, 0xc, 0x84],
    [inode.mtime, 0x10, 0x88],
  ] as const) {
    const e = encodeTime(t, has(extraAt))
    b.writeInt32LE(e.lo, secAt)
    if (has(extraAt)) b.writeUInt32LE(e.extra, extraAt)
  }
  if (inode.crtime !== undefined && has(0x90)) {
    const e = encodeTime(inode.crtime, has(0x94))
    b.writeInt32LE(e.lo, 0x90)
    if (has(0x94)) b.writeUInt32LE(e.extra, 0x94)
  }
  u32(inode.dtime, 0x14)
  b.writeUInt16LE(inode.gid & 0xffff, 0x18)
  b.writeUInt16LE(Math.floor(inode.gid / 2 ** 16) & 0xffff, 0x7a)
  b.writeUInt16LE(inode.linksCount, 0x1a)
  u32(inode.blocks, 0x1c)
  if (hugeFile) b.writeUInt16LE(Math.floor(inode.blocks / 2 ** 32) & 0xffff, 0x74)
  u32(inode.flags, 0x20)
  u32(inode.version, 0x24)
  if (has(0x98)) u32(Math.floor(inode.version / 2 ** 32), 0x98)
  inode.block.copy(b, I_BLOCK_OFFSET)
  u32(inode.generation, 0x64)
  u32(inode.fileAcl, 0x68)
  b.writeUInt16LE(Math.floor(inode.fileAcl / 2 ** 32) & 0xffff, 0x76)
  if (inodeSize > GOOD_OLD_INODE_SIZE) b.writeUInt16LE(inode.extraIsize, EXTRA_ISIZE_OFFSET)
  if (inode.projid !== undefined && has(0x9c)) u32(inode.projid, 0x9c)
}
