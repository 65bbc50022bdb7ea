/*
 * A new inode as the kernel's __ext4_new_inode leaves it: a random i_generation (NFS file handles
 * carry it, so a reused inode number is not mistaken for the old file), i_extra_isize 32 (room for
 * nanosecond times, crtime, the checksum's high half and the project id), all four times now,
 * EXTENTS_FL with an empty extent root for regular files, directories and slow symlinks, a short
 * symlink's target inline in i_block (a fast symlink), a device number in i_block for device nodes.
 */
import { randomFillSync } from 'node:crypto'
import { encodeExtentHeader, EXTENT_MAGIC } from '../format/extent.ts'
import { GOOD_OLD_INODE_SIZE, I_BLOCK_SIZE, INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../format/inode.ts'
import type { Ext4Time, Inode } from '../format/inode.ts'

/** The extra inode bytes the kernel asks for (s_want_extra_isize's default). */
export const NEW_EXTRA_ISIZE = 32
/** Entries of an extent root in i_block: (60 - 12) / 12. */
const ROOT_EXTENTS = 4

export interface NewInodeSpec {
  /** File type and permission bits (S_IF* | 0o7777). */
  mode: number
  uid: number
  gid: number
  /** Default: 2 for a directory, 1 otherwise. */
  linksCount?: number
  /** A symlink's target: inline when shorter than i_block, else the caller writes it to blocks. */
  symlink?: Buffer
  /** A device node's numbers. */
  rdev?: { major: number; minor: number }
  now?: Ext4Time
  generation?: number
}

export function nowTime(): Ext4Time {
  // performance.timeOrigin + now() carries microseconds; Date.now() only milliseconds.
  const ms = performance.timeOrigin + performance.now()
  const sec = Math.floor(ms / 1000)
  return { sec, nsec: Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)) }
}

/** i_block of an extent-mapped inode with no extents yet. */
export function emptyExtentRoot(): Buffer {
  const out = Buffer.alloc(I_BLOCK_SIZE)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: 0, max: ROOT_EXTENTS, depth: 0, generation: 0 }).copy(out)
  return out
}

/** Random i_generation values drawn 1,024 at a time: one crypto call per inode cost more than the rest of a create. */
const GENERATIONS = new Uint32Array(1024)
let generationsLeft = 0

export function randomGeneration(): number {
  if (generationsLeft === 0) {
    randomFillSync(GENERATIONS)
    generationsLeft = GENERATIONS.length
  }
  return GENERATIONS[--generationsLeft] ?? 0
}

/** Is a symlink to target short enough to live in i_block (ext4_inode_is_fast_symlink)? */
export function isFastSymlink(target: Buffer): boolean {
  return target.length < I_BLOCK_SIZE
}

export function newInode(spec: NewInodeSpec, inodeSize: number): Inode {
  const type = spec.mode & S_IFMT
  const now = spec.now ?? nowTime()
  let block: Buffer = Buffer.alloc(I_BLOCK_SIZE)
  let flags = 0
  let size = 0
  if (type === S_IFREG || type === S_IFDIR || (type === S_IFLNK && (spec.symlink === undefined || !isFastSymlink(spec.symlink)))) {
    block = emptyExtentRoot()
    flags |= INODE_FLAGS.EXTENTS
  }
  if (type === S_IFLNK && spec.symlink !== undefined) {
    size = spec.symlink.length
    if (isFastSymlink(spec.symlink)) spec.symlink.copy(block)
  }
  if ((type === S_IFCHR || type === S_IFBLK) && spec.rdev !== undefined) {
    const { major, minor } = spec.rdev
    // As ext4_set_inode's callers do: the old 16-bit form in i_block[0] when it fits, else the new one in i_block[1].
    if (major < 256 && minor < 256) block.writeUInt32LE((major << 8) | minor, 0)
    else block.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, 4)
  }
  return {
    mode: spec.mode,
    uid: spec.uid,
    gid: spec.gid,
    size,
    atime: { ...now },
    ctime: { ...now },
    mtime: { ...now },
    crtime: inodeSize > GOOD_OLD_INODE_SIZE ? { ...now } : undefined,
    dtime: 0,
    linksCount: spec.linksCount ?? (type === S_IFDIR ? 2 : 1),
    blocks: 0,
    flags,
    version: 0,
    generation: spec.generation ?? randomGeneration(),
    fileAcl: 0,
    block,
    extraIsize: inodeSize > GOOD_OLD_INODE_SIZE ? Math.min(NEW_EXTRA_ISIZE, inodeSize - GOOD_OLD_INODE_SIZE) : 0,
    checksumLo: 0,
    checksumHi: undefined,
    projid: inodeSize > GOOD_OLD_INODE_SIZE ? 0 : undefined,
  }
}
