import type { Attr, FileType, SetAttr, Timespec } from '../../types.ts'
import { blocksIn512, ext4Time, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../format/inode.ts'
import type { Ext4Time, Inode } from '../format/inode.ts'

const TYPES = new Map<number, FileType>([
  [S_IFREG, 'file'],
  [S_IFDIR, 'dir'],
  [S_IFLNK, 'symlink'],
  [S_IFBLK, 'block'],
  [S_IFCHR, 'char'],
  [S_IFSOCK, 'socket'],
  [S_IFIFO, 'fifo'],
])

const MODE_OF = new Map<FileType, number>([...TYPES].map(([m, t]) => [t, m]))

/** The type an inode's mode names; undefined for a mode ext4 does not define (fsck reports it). */
export function fileTypeOf(mode: number): FileType | undefined {
  return TYPES.get(mode & S_IFMT)
}

export function modeBitsOf(type: FileType): number {
  return MODE_OF.get(type) ?? 0
}

/**
 * The inode's time as it is, before 1970 too (as the local backend reports a host file's): NFS
 * clamps to its unsigned 32-bit seconds where it encodes (server/nfs3/attrs.ts), while a backup or
 * a standby keeps the real time. A nanosecond field past 1e9 (a corrupt inode) reads as 0.
 */
function timeOf(t: Ext4Time): Timespec {
  return { sec: t.sec, nsec: t.nsec < 1e9 ? t.nsec : 0 }
}

/** timeOf(t), or `same` when t is the very same time (a file's ctime and mtime mostly are). */
function timeOrSame(t: Ext4Time, same: Timespec): Timespec {
  const out = timeOf(t)
  return out.sec === same.sec && out.nsec === same.nsec ? same : out
}

/*
 * Parts of Attr shared between files where they are equal: no device numbers, an empty file's 0
 * bytes. Readers never change an Attr; the engine keeps one per cached inode (inode-table.ts
 * InodeSlot), and READDIRPLUS reads hundreds a call, each object read a likely cache miss once the
 * directory is bigger than the CPU's caches: fewer objects per Attr, fewer misses.
 */
const NO_RDEV: { readonly major: number; readonly minor: number } = Object.freeze({ major: 0, minor: 0 })
const ZERO = 0n

/**
 * Device numbers in i_block (inodes.rst, "Inode Size" note on devices): old-style 16-bit
 * major:minor in i_block[0] when it is non-zero, else the new 32-bit encoding in i_block[1]
 * (minor's low 8 bits, major 12 bits, minor's high 12 bits), as the kernel's new_decode_dev.
 */
export function rdevOf(inode: Inode): { readonly major: number; readonly minor: number } {
  const t = inode.mode & S_IFMT
  if (t !== S_IFBLK && t !== S_IFCHR) return NO_RDEV
  const old = inode.block.readUInt32LE(0)
  if (old !== 0) return { major: (old >>> 8) & 0xff, minor: old & 0xff }
  const dev = inode.block.readUInt32LE(4)
  return { major: (dev & 0xfff00) >>> 8, minor: (dev & 0xff) | ((dev >>> 12) & 0xfff00) }
}

/** i_block for a device node, encoded as the kernel does: old form when both fit in 8 bits. */
export function encodeRdev(block: Buffer, rdev: { major: number; minor: number }): void {
  block.fill(0)
  if (rdev.major < 256 && rdev.minor < 256) {
    block.writeUInt32LE((rdev.major << 8) | rdev.minor, 0)
  } else {
    block.writeUInt32LE(((rdev.minor & 0xff) | ((rdev.major & 0xfff) << 8) | ((rdev.minor & ~0xff) << 12)) >>> 0, 4)
  }
}

export function attrOf(ino: number, inode: Inode, blockSize: number): Attr {
  const type = fileTypeOf(inode.mode) ?? 'file'
  const blocks = blocksIn512(inode, blockSize)
  const mtime = timeOf(inode.mtime)
  return {
    type,
    mode: inode.mode & 0o7777,
    nlink: inode.linksCount,
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size === 0 ? ZERO : BigInt(inode.size),
    used: blocks === 0 ? ZERO : BigInt(blocks) * 512n,
    rdev: rdevOf(inode),
    fileid: BigInt(ino),
    gen: inode.generation,
    atime: timeOrSame(inode.atime, mtime),
    mtime,
    ctime: timeOrSame(inode.ctime, mtime),
  }
}

export function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR
}

/** The attributes SETATTR (or a create) sets; the caller sets ctime. */
export function applyAttrs(inode: Inode, set: SetAttr, now: Timespec): void {
  if (set.mode !== undefined) inode.mode = (inode.mode & S_IFMT) | (set.mode & 0o7777)
  if (set.uid !== undefined) inode.uid = set.uid
  if (set.gid !== undefined) inode.gid = set.gid
  // A time before 1901 (a restored tar member, a primary's file) is kept as the inode can hold it.
  if (set.atime !== undefined) inode.atime = set.atime === 'now' ? now : ext4Time(set.atime)
  if (set.mtime !== undefined) inode.mtime = set.mtime === 'now' ? now : ext4Time(set.mtime)
}
