/*
 * The few inodes mkfs writes (bad blocks 1, root 2, resize 7, journal 8,
 * lost+found 11), encoded into their on-disk bytes with the checksum set
 * (inodes.rst; checksums.rst). Times are whole seconds, as mke2fs stores
 * them; the epoch bits carry seconds past 2038.
 */
import { inodeCsum, inodeSeed } from '../reader/csum-verifier.ts'
import { crc32cUpdate } from '../crc32c.ts'
import { EXTENT_MAGIC, encodeExtent, encodeExtentHeader, encodeExtentIndex } from '../format/extent.ts'
import { INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET, INODE_FLAGS, I_BLOCK_OFFSET } from '../format/inode.ts'
import type { Run } from './place.ts'

export interface NewInode {
  mode: number
  linksCount: number
  size: number
  /** i_blocks in 512-byte units. */
  blocks512: number
  flags: number
  /** The 60 bytes of i_block. */
  block: Buffer
  /** i_extra_isize: 32, or 0 for an inode written as the 128-byte structure (the bad-blocks inode). */
  extraIsize: number
  /** Seconds since 1970 for atime, ctime, mtime (and crtime when extraIsize covers it). */
  time: number
}

function putTime(out: Buffer, secAt: number, extraAt: number | undefined, sec: number): void {
  const lo = sec | 0
  out.writeInt32LE(lo, secAt)
  // Epoch bits: how many 2^32 the signed low word is short of the time (inodes.rst, "Inode Timestamps").
  if (extraAt !== undefined) out.writeUInt32LE(((sec - lo) / 2 ** 32) & 3, extraAt)
}

/** The inode's bytes (inodeSize long), checksummed for inode number ino under the file system seed. */
export function encodeInode(ino: number, n: NewInode, inodeSize: number, seed: number): Buffer {
  const out = Buffer.alloc(inodeSize)
  const extra = n.extraIsize > 0
  out.writeUInt16LE(n.mode, 0x0)
  out.writeUInt32LE(n.size % 2 ** 32, 0x4)
  out.writeUInt32LE(Math.floor(n.size / 2 ** 32), 0x6c)
  putTime(out, 0x8, extra ? 0x8c : undefined, n.time)
  putTime(out, 0xc, extra ? 0x84 : undefined, n.time)
  putTime(out, 0x10, extra ? 0x88 : undefined, n.time)
  if (extra) putTime(out, 0x90, 0x94, n.time)
  out.writeUInt16LE(n.linksCount, 0x1a)
  out.writeUInt32LE(n.blocks512 % 2 ** 32, 0x1c)
  out.writeUInt16LE(Math.floor(n.blocks512 / 2 ** 32), 0x74)
  out.writeUInt32LE(n.flags, 0x20)
  n.block.copy(out, I_BLOCK_OFFSET, 0, 60)
  if (inodeSize > 128) out.writeUInt16LE(n.extraIsize, 0x80)
  const sum = inodeCsum(seed, ino, 0, out)
  out.writeUInt16LE(sum & 0xffff, INODE_CHECKSUM_LO_OFFSET)
  if (extra) out.writeUInt16LE(sum >>> 16, INODE_CHECKSUM_HI_OFFSET)
  return out
}

/** i_block holding an extent tree root of depth 0 with these extents (at most 4). */
export function extentRoot(runs: readonly Run[]): Buffer {
  if (runs.length > 4) throw new RangeError(`${runs.length} extents do not fit in an inode`)
  const out = Buffer.alloc(60)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: runs.length, max: 4, depth: 0, generation: 0 }).copy(out, 0)
  runs.forEach((r, i) => encodeExtent({ block: r.block, len: r.len, start: r.start, uninit: false }).copy(out, 12 + i * 12))
  return out
}

export const EXTENTS_FL = INODE_FLAGS.EXTENTS

/**
 * i_block of a depth-1 tree: one index entry pointing at the leaf block that holds every extent.
 * The slots after it keep the extents 2..4 the root held before it split, as e2fsprogs's
 * extent_node_split leaves them (dead bytes, kept so our image matches mke2fs's byte for byte).
 */
export function extentIndexRoot(leaf: number, runs: readonly Run[]): Buffer {
  const out = Buffer.alloc(60)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: 1, max: 4, depth: 1, generation: 0 }).copy(out, 0)
  runs.slice(1, 4).forEach((r, i) => encodeExtent({ block: r.block, len: r.len, start: r.start, uninit: false }).copy(out, 24 + i * 12))
  encodeExtentIndex({ block: 0, leaf }).copy(out, 12)
  return out
}

/** A leaf block of inode ino holding runs, room for as many as the block takes, its checksum in the tail. */
export function extentLeaf(ino: number, runs: readonly Run[], blockSize: number, seed: number): Buffer {
  const out = Buffer.alloc(blockSize)
  const max = Math.floor((blockSize - 12) / 12)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: runs.length, max, depth: 0, generation: 0 }).copy(out, 0)
  runs.forEach((r, i) => encodeExtent({ block: r.block, len: r.len, start: r.start, uninit: false }).copy(out, 12 + i * 12))
  const tail = 12 + max * 12
  out.writeUInt32LE(crc32cUpdate(inodeSeed(seed, ino, 0), out.subarray(0, tail)), tail)
  return out
}
