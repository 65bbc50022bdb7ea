/*
 * The numbers a new file system is built from, computed as mke2fs 1.47 does
 * (misc/mke2fs.c PRS and lib/ext2fs/initialize.c), so that `tsnfs mkfs` and
 * `mkfs.ext4 -b B` on an image of the same size agree on every count: block
 * and inode counts, groups, inodes per group, reserved GDT blocks, journal
 * size. Where mke2fs would fall back to a layout we do not write (meta_bg for
 * a descriptor table larger than a group) we refuse instead.
 */
import { MkfsError } from './errors.ts'

export const INODE_SIZE = 256
/** sizeof(struct ext2_inode_large) - 128: what mke2fs puts in i_extra_isize and s_{min,want}_extra_isize. */
export const EXTRA_ISIZE = 32
export const DESC_SIZE = 64
/** s_first_ino: inodes 1..10 are reserved, 11 is lost+found. */
export const FIRST_INO = 11
/** flex_bg of 16 groups (mke2fs.conf's default flex_bg_size). */
export const LOG_GROUPS_PER_FLEX = 4
/** The largest file system whose block bitmap we keep in memory while placing (2^32 blocks, 512 MiB of bits). */
export const MAX_BLOCKS = 2 ** 32
const MiB = 1024 * 1024

export interface GeometryOptions {
  /** Bytes of the device; the file system takes what whole blocks fit (rounded down to 4 KiB). */
  size: number
  blockSize?: 1024 | 4096
  /** Bytes of space per inode (mke2fs -i); default by size, as mke2fs.conf's size types. */
  bytesPerInode?: number
  /** Journal length in blocks (default: ext2fs_default_journal_size). */
  journalBlocks?: number
}

export interface Geometry {
  blockSize: number
  logBlockSize: number
  firstDataBlock: number
  blocksCount: number
  rBlocksCount: number
  blocksPerGroup: number
  groupCount: number
  descBlocks: number
  reservedGdtBlocks: number
  inodesPerGroup: number
  inodesCount: number
  inodeBlocksPerGroup: number
  journalBlocks: number
  bytesPerInode: number
}

/** mke2fs.conf's size types: the block size and bytes-per-inode a device of this size gets by default. */
export function sizeType(bytes: number): { name: string; blockSize: 1024 | 4096; bytesPerInode: number } {
  if (bytes < 3 * MiB) return { name: 'floppy', blockSize: 1024, bytesPerInode: 8192 }
  if (bytes < 512 * MiB) return { name: 'small', blockSize: 1024, bytesPerInode: 4096 }
  if (bytes < 4 * 2 ** 40) return { name: 'default', blockSize: 4096, bytesPerInode: 16384 }
  if (bytes < 16 * 2 ** 40) return { name: 'big', blockSize: 4096, bytesPerInode: 32768 }
  return { name: 'huge', blockSize: 4096, bytesPerInode: 65536 }
}

/** ext2fs_default_journal_size: journal blocks for a file system of `blocks` blocks (-1: too small for one). */
export function defaultJournalBlocks(blocks: number): number {
  if (blocks < 2048) return -1
  if (blocks < 32768) return 1024
  if (blocks < 256 * 1024) return 4096
  if (blocks < 512 * 1024) return 8192
  if (blocks < 4096 * 1024) return 16384
  if (blocks < 8192 * 1024) return 32768
  if (blocks < 16384 * 1024) return 65536
  if (blocks < 32768 * 1024) return 131072
  return 262144
}

/** sparse_super: groups 0 and 1 and the powers of 3, 5 and 7 hold superblock and descriptor copies. */
export function groupHasSuper(group: number): boolean {
  if (group <= 1) return true
  if (group % 2 === 0) return false
  for (const base of [3, 5, 7]) {
    let n = base
    while (n < group) n *= base
    if (n === group) return true
  }
  return false
}

/** The backup groups below groupCount in the order ext2fs lists them (res_gdt.c list_backups): 1, 3, 5, 7, 9, 25, 27, 49, ... */
export function backupGroups(groupCount: number): number[] {
  const out: number[] = []
  const next = { 3: 1, 5: 5, 7: 7 }
  for (;;) {
    const base = next[3] <= next[5] && next[3] <= next[7] ? 3 : next[5] <= next[7] ? 5 : 7
    const g = next[base]
    if (g >= groupCount) return out
    out.push(g)
    next[base] = g * base
  }
}

function divCeil(a: number, b: number): number {
  return Math.floor((a + b - 1) / b)
}

/** calc_reserved_gdt_blocks: descriptor blocks to let the file system grow 1024-fold (or to 2^32 blocks) online. */
function reservedGdt(blocks: number, firstDataBlock: number, bpg: number, blockSize: number, descBlocks: number): number {
  const maxBlocks = blocks < Math.floor(0xffffffff / 1024) ? blocks * 1024 : 0xffffffff
  const rsvGroups = divCeil(maxBlocks - firstDataBlock, bpg)
  const rsv = divCeil(rsvGroups, blockSize / DESC_SIZE) - descBlocks
  return Math.max(0, Math.min(rsv, blockSize / 4))
}

export function computeGeometry(opts: GeometryOptions): Geometry {
  const type = sizeType(opts.size)
  const blockSize = opts.blockSize ?? type.blockSize
  let bytesPerInode = opts.bytesPerInode ?? type.bytesPerInode
  // mke2fs: a ratio below the block size means more inodes than blocks, which nothing uses.
  if (bytesPerInode < blockSize) bytesPerInode = blockSize
  if (!Number.isSafeInteger(bytesPerInode) || bytesPerInode > 64 * MiB) {
    throw new MkfsError('MKFS_BAD_OPTION', `bytes per inode ${opts.bytesPerInode} outside ${blockSize}..${64 * MiB}`)
  }
  // Whole blocks, rounded down to the page size as mke2fs does for a device.
  let blocks0 = Math.floor(opts.size / blockSize)
  if (blockSize < 4096) blocks0 -= blocks0 % (4096 / blockSize)
  if (blocks0 > MAX_BLOCKS) throw new MkfsError('MKFS_TOO_LARGE', `${blocks0} blocks of ${blockSize} bytes: more than the ${MAX_BLOCKS} we format`)
  const firstDataBlock = blockSize === 1024 ? 1 : 0
  const inodesWanted = Math.max(FIRST_INO + 1, Math.min(Math.floor((blocks0 * blockSize) / bytesPerInode), 0xffffffff))
  if (inodesWanted * INODE_SIZE >= blocks0 * blockSize) throw new MkfsError('MKFS_TOO_SMALL', `${opts.size} bytes cannot hold ${inodesWanted} inodes`)
  const inodesPerBlock = blockSize / INODE_SIZE
  let bpg = blockSize * 8
  let blocks = blocks0
  // 5 % reserved for root; a dropped last group keeps the ratio mke2fs computed on the whole device.
  const r0 = Math.floor((5 * blocks0) / 100)
  const reservedRatio = (100 * r0) / blocks0
  for (;;) {
    const groupCount = divCeil(blocks - firstDataBlock, bpg)
    if (groupCount === 0) throw new MkfsError('MKFS_TOO_SMALL', `${opts.size} bytes is too small for a file system`)
    const descBlocks = divCeil(groupCount, blockSize / DESC_SIZE)
    let ipg = divCeil(inodesWanted, groupCount)
    if (ipg > blockSize * 8) {
      // More inodes than one bitmap block tracks: smaller groups, as initialize.c retries.
      if (bpg < 256) throw new MkfsError('MKFS_TOO_MANY_INODES', `${inodesWanted} inodes do not fit ${groupCount} groups`)
      bpg -= 8
      blocks = blocks0
      continue
    }
    ipg = Math.min(ipg, 65536 - inodesPerBlock)
    let itb = divCeil(ipg * INODE_SIZE, blockSize)
    ipg = Math.floor((itb * blockSize) / INODE_SIZE)
    ipg = Math.max(8, ipg) & ~7
    itb = divCeil(ipg * INODE_SIZE, blockSize)
    const rsv = reservedGdt(blocks, firstDataBlock, bpg, blockSize, descBlocks)
    if (3 + itb + rsv + descBlocks > bpg) throw new MkfsError('MKFS_TOO_MANY_INODES', `group metadata (${3 + itb + rsv + descBlocks} blocks) exceeds a group of ${bpg}`)
    // A last group too short for its own metadata (+50 blocks) is dropped, as initialize.c does.
    const lastOverhead = 2 + itb + (groupHasSuper(groupCount - 1) ? 1 + descBlocks + rsv : 0)
    const rem = (blocks - firstDataBlock) % bpg
    if (groupCount === 1 && rem !== 0 && rem < lastOverhead) throw new MkfsError('MKFS_TOO_SMALL', `${opts.size} bytes is too small for a file system`)
    if (rem !== 0 && rem < lastOverhead + 50) {
      blocks -= rem
      continue
    }
    const journalBlocks = opts.journalBlocks ?? defaultJournalBlocks(blocks)
    if (journalBlocks < 1024) throw new MkfsError('MKFS_TOO_SMALL', `${blocks} blocks is too small for a journal (at least 2048 blocks)`)
    return {
      blockSize,
      logBlockSize: Math.log2(blockSize) - 10,
      firstDataBlock,
      blocksCount: blocks,
      rBlocksCount: blocks === blocks0 ? r0 : Math.floor((reservedRatio * blocks) / 100),
      blocksPerGroup: bpg,
      groupCount,
      descBlocks,
      reservedGdtBlocks: rsv,
      inodesPerGroup: ipg,
      inodesCount: ipg * groupCount,
      inodeBlocksPerGroup: itb,
      journalBlocks,
      bytesPerInode,
    }
  }
}

/** First block of group g. */
export function groupFirstBlock(geo: Geometry, g: number): number {
  return geo.firstDataBlock + g * geo.blocksPerGroup
}

/** Last block of group g (the last group may be short). */
export function groupLastBlock(geo: Geometry, g: number): number {
  return g === geo.groupCount - 1 ? geo.blocksCount - 1 : groupFirstBlock(geo, g + 1) - 1
}

export function groupOfBlock(geo: Geometry, block: number): number {
  return Math.floor((block - geo.firstDataBlock) / geo.blocksPerGroup)
}
