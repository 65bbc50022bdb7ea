/*
 * The arithmetic of growing an ext4 file system (no I/O): how many blocks and groups the new
 * size gives, which descriptor blocks it needs, and where each new group's block bitmap, inode
 * bitmap and inode table go. Modelled on e2fsprogs' resize2fs (adjust_fs_info): groups are
 * appended, a last group too short for its own metadata and 50 blocks is left off (as mke2fs
 * and resize2fs do), descriptor blocks beyond the existing ones come out of the reserved GDT
 * blocks the resize inode holds. Each new group keeps its tables in itself, right after its
 * superblock copy (flex_bg allows them anywhere; in-group is what resize2fs falls back to).
 */
import { groupHasSuper } from '../mkfs/geometry.ts'
import { ResizeError } from './errors.ts'

/** What the plan needs to know of the file system as it is. */
export interface FsShape {
  blockSize: number
  firstDataBlock: number
  blocksCount: number
  blocksPerGroup: number
  inodesPerGroup: number
  inodeSize: number
  descSize: number
  reservedGdtBlocks: number
  /** Every group carries a superblock copy unless sparse_super. */
  sparseSuper: boolean
  /** s_blocks_count may pass 2^32 only with the 64bit feature. */
  is64bit: boolean
}

export interface NewGroup {
  group: number
  first: number
  /** Blocks in the group (the last may be short). */
  length: number
  /** Superblock copy + descriptor blocks + reserved GDT blocks at the group's start (0 when none). */
  superBlocks: number
  blockBitmap: number
  inodeBitmap: number
  inodeTable: number
  freeBlocks: number
}

export interface GrowPlan {
  oldBlocks: number
  newBlocks: number
  oldGroups: number
  newGroups: number
  oldDescBlocks: number
  newDescBlocks: number
  /** Reserved GDT blocks left after some became descriptor blocks. */
  newReservedGdt: number
  inodeTableBlocks: number
  /** Blocks the old last group gains (it extends to a whole group, or to the new end). */
  lastGroupGain: number
  groups: NewGroup[]
  /** Blocks every new group's own metadata takes (superblock copies, tables): for s_overhead_clusters. */
  newOverhead: number
}

/** The most blocks we grow to: what the block bitmaps of 2^32 blocks need stays small. */
export const MAX_GROW_BLOCKS = 2 ** 32
/** mke2fs and resize2fs leave off a last group with fewer free blocks than this past its metadata. */
const LAST_GROUP_SLACK = 50

function divCeil(a: number, b: number): number {
  return Math.floor((a + b - 1) / b)
}

export function hasSuper(fs: FsShape, group: number): boolean {
  return !fs.sparseSuper || groupHasSuper(group)
}

/** Blocks the file system takes on a device of `bytes`: whole blocks, a multiple of 4 KiB as mke2fs rounds. */
export function blocksFor(fs: FsShape, bytes: number): number {
  let blocks = Math.floor(bytes / fs.blockSize)
  if (fs.blockSize < 4096) blocks -= blocks % (4096 / fs.blockSize)
  return blocks
}

/** The largest block count the existing and reserved descriptor blocks can describe. */
export function maxBlocksWithGdt(fs: FsShape): number {
  const perBlock = fs.blockSize / fs.descSize
  const oldDesc = divCeil(divCeil(fs.blocksCount - fs.firstDataBlock, fs.blocksPerGroup), perBlock)
  return fs.firstDataBlock + (oldDesc + fs.reservedGdtBlocks) * perBlock * fs.blocksPerGroup
}

/**
 * The plan for growing `fs` to `wanted` blocks (rounded down as needed), or undefined when the
 * size gives no new block. Smaller: RESIZE_SHRINK. More descriptor blocks than there are plus the
 * reserved ones: RESIZE_NO_GDT_ROOM naming the largest size that fits.
 */
export function planGrow(fs: FsShape, wanted: number): GrowPlan | undefined {
  const { blocksPerGroup: bpg, firstDataBlock: fdb, blockSize: bs } = fs
  const oldBlocks = fs.blocksCount
  if (wanted < oldBlocks) throw new ResizeError('RESIZE_SHRINK', `the file system has ${oldBlocks} blocks; ${wanted} would shrink it, and resize only grows`)
  const limit = fs.is64bit ? MAX_GROW_BLOCKS : 2 ** 32 - 1
  if (wanted > limit) throw new ResizeError('RESIZE_TOO_LARGE', `${wanted} blocks is more than the ${limit} this file system can hold`)
  const perBlock = bs / fs.descSize
  const itb = divCeil(fs.inodesPerGroup * fs.inodeSize, bs)
  const oldGroups = divCeil(oldBlocks - fdb, bpg)
  const oldDescBlocks = divCeil(oldGroups, perBlock)
  let newBlocks = wanted
  for (;;) {
    if (newBlocks <= oldBlocks) return undefined
    const newGroups = divCeil(newBlocks - fdb, bpg)
    const newDescBlocks = divCeil(newGroups, perBlock)
    const extra = newDescBlocks - oldDescBlocks
    if (extra > fs.reservedGdtBlocks) {
      throw new ResizeError(
        'RESIZE_NO_GDT_ROOM',
        `${newBlocks} blocks need ${newDescBlocks} group descriptor blocks; the file system has ${oldDescBlocks} and ${fs.reservedGdtBlocks} reserved for growth, enough for ${maxBlocksWithGdt(fs)} blocks at most`,
      )
    }
    const newReservedGdt = fs.reservedGdtBlocks - extra
    const superBlocks = (g: number): number => (hasSuper(fs, g) ? 1 + newDescBlocks + newReservedGdt : 0)
    const rem = (newBlocks - fdb) % bpg
    const last = newGroups - 1
    // Only a new last group has metadata to fit; the old last group only gets longer.
    if (last >= oldGroups && rem !== 0 && rem < superBlocks(last) + 2 + itb + LAST_GROUP_SLACK) {
      newBlocks -= rem
      continue
    }
    if (fs.inodesPerGroup * newGroups > 2 ** 32 - 1) {
      throw new ResizeError('RESIZE_TOO_LARGE', `${newGroups} groups of ${fs.inodesPerGroup} inodes is more than 2^32 - 1 inodes`)
    }
    const groups: NewGroup[] = []
    let newOverhead = 0
    for (let g = oldGroups; g < newGroups; g++) {
      const first = fdb + g * bpg
      const length = Math.min(bpg, newBlocks - first)
      const sb = superBlocks(g)
      const used = sb + 2 + itb
      groups.push({ group: g, first, length, superBlocks: sb, blockBitmap: first + sb, inodeBitmap: first + sb + 1, inodeTable: first + sb + 2, freeBlocks: length - used })
      newOverhead += used
    }
    const oldLastEnd = Math.min(fdb + oldGroups * bpg, newBlocks)
    return {
      oldBlocks,
      newBlocks,
      oldGroups,
      newGroups,
      oldDescBlocks,
      newDescBlocks,
      newReservedGdt,
      inodeTableBlocks: itb,
      lastGroupGain: oldLastEnd - oldBlocks,
      groups,
      newOverhead,
    }
  }
}
