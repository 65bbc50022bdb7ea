/*
 * Where everything goes, decided in mke2fs's order with libext2fs's searches
 * (block-map.ts), so the result matches `mkfs.ext4` block for block:
 *   1. superblock, descriptors and reserved GDT blocks of the groups that
 *      hold copies (initialize.c, ext2fs_reserve_super_and_bgd);
 *   2. per group, its block bitmap, inode bitmap and inode table, packed per
 *      flex group of 16 (alloc_tables.c ext2fs_allocate_group_table,
 *      flexbg_offset);
 *   3. the root directory's block, lost+found's blocks, the resize inode's
 *      double-indirect block (first free block from each one's goal);
 *   4. the journal, from the start of the group with the most free blocks
 *      around the middle of the file system (mkjournal.c
 *      get_midpoint_journal_block), filling free blocks in order.
 * Group flags and counters follow from what was placed where.
 */
import { BlockMap } from './block-map.ts'
import { MkfsError } from './errors.ts'
import { FIRST_INO, groupFirstBlock, groupHasSuper, groupLastBlock, groupOfBlock, LOG_GROUPS_PER_FLEX } from './geometry.ts'
import type { Geometry } from './geometry.ts'

export const ROOT_INO = 2
export const RESIZE_INO = 7
export const JOURNAL_INO = 8
export const LPF_INO = 11
/** mke2fs grows lost+found to 16 KiB (at least two blocks, at most the 12 direct ones), so fsck can relink files without allocating. */
const LPF_BYTES = 16 * 1024
const LPF_MAX_BLOCKS = 12
/** An initialized extent's longest length (ext4_extents.h EXT_INIT_MAX_LEN). */
const MAX_EXTENT_LEN = 32768
/** Extents the inode's i_block holds without a tree block. */
export const INODE_EXTENTS = 4

export interface Run {
  /** First logical block. */
  block: number
  /** First physical block. */
  start: number
  len: number
}

export interface GroupPlan {
  blockBitmap: number
  inodeBitmap: number
  inodeTable: number
  freeBlocks: number
  freeInodes: number
  usedDirs: number
  itableUnused: number
  /** No block of the group is allocated beyond its superblock and descriptor copies. */
  blockUninit: boolean
  /** No inode of the group is in use. */
  inodeUninit: boolean
}

export interface Plan {
  geo: Geometry
  map: BlockMap
  groups: GroupPlan[]
  rootBlock: number
  lpfBlocks: Run
  resizeDind: number
  journal: Run[]
  /** The journal's extent leaf block, when its extents do not fit in the inode. */
  journalLeaf: number | undefined
  /** s_overhead_clusters: the file system's own blocks (tables and journal), as mke2fs counts them. */
  overhead: number
  freeBlocks: number
  freeInodes: number
}

const FLEX = 1 << LOG_GROUPS_PER_FLEX

class Placer {
  readonly geo: Geometry
  readonly map: BlockMap
  /** Groups with a block allocated beyond the superblock copies: not BLOCK_UNINIT. */
  readonly touched = new Set<number>()
  readonly tables: Array<{ bb: number; ib: number; it: number }> = []

  constructor(geo: Geometry) {
    this.geo = geo
    this.map = new BlockMap(geo.blocksCount, geo.firstDataBlock)
  }

  take(block: number, n: number): void {
    this.map.mark(block, n)
    for (let g = groupOfBlock(this.geo, block); g <= groupOfBlock(this.geo, block + n - 1); g++) this.touched.add(g)
  }

  /** ext2fs_new_block2: the first free block from goal to the end, then from the start. */
  newBlock(goal: number): number {
    const { blocksCount, firstDataBlock } = this.geo
    if (goal <= 0 || goal >= blocksCount) goal = firstDataBlock
    let b = this.map.findFirst(goal, blocksCount, false)
    if (b < 0) b = this.map.findFirst(firstDataBlock, goal, false)
    if (b < 0) throw new MkfsError('MKFS_TOO_SMALL', 'no free block left for the root directory, lost+found or the resize inode')
    this.take(b, 1)
    return b
  }

  /** flexbg_offset: where a flex group's run of one kind of table continues, or starts. */
  flexbgOffset(group: number, startBlk: number, remGroups: number, elemSize: number): number {
    const { geo, map } = this
    const size = Math.min(remGroups * elemSize, Math.floor(geo.blocksPerGroup / 4))
    if (startBlk !== 0 && startBlk < geo.blocksCount) {
      const quick = map.getFree(startBlk, startBlk + size, elemSize)
      if (quick >= 0) return quick
    }
    const first = groupFirstBlock(geo, FLEX * Math.floor(group / FLEX))
    const lastBlk = groupLastBlock(geo, Math.min(group | (FLEX - 1), geo.groupCount - 1))
    for (const [from, n] of [[first, size], [first, elemSize], [0, elemSize]] as const) {
      const b = map.getFree(from, lastBlk, n)
      if (b >= 0) return b
    }
    return 0
  }

  allocateGroupTables(group: number): void {
    const { geo, map } = this
    const groupBlk = groupFirstBlock(geo, group)
    const lastGrp = Math.min(group | (FLEX - 1), geo.groupCount - 1)
    const remGroups = lastGrp - group + 1
    const lastBlk = groupLastBlock(geo, lastGrp)
    const prev = this.tables[group - 1]
    // The last flex group keeps its tables contiguous: it leaves room only for the groups it has.
    let tableOffset = FLEX
    if (group % FLEX === 0 && lastGrp === geo.groupCount - 1) {
      const rem = lastGrp & (FLEX - 1)
      tableOffset = rem === 0 ? FLEX : rem + 1
    }
    const inFlex = group % FLEX !== 0 && prev !== undefined
    const one = (start: number, what: string): number => {
      let b = map.getFree(start, lastBlk, 1)
      if (b < 0) b = map.getFree(groupBlk, lastBlk, 1)
      if (b < 0) throw new MkfsError('MKFS_TOO_SMALL', `no room for the ${what} of group ${group}`)
      this.take(b, 1)
      return b
    }
    const bb = one(this.flexbgOffset(group, inFlex ? prev.bb + 1 : 0, remGroups, 1), 'block bitmap')
    const ib = one(this.flexbgOffset(group, inFlex ? prev.ib + 1 : bb + tableOffset, remGroups, 1), 'inode bitmap')
    const itb = geo.inodeBlocksPerGroup
    const itStart = this.flexbgOffset(group, inFlex ? prev.it + itb : ib + tableOffset, remGroups, itb)
    const it = map.getFree(itStart, lastBlk, itb)
    if (it < 0) throw new MkfsError('MKFS_TOO_SMALL', `no room for the inode table of group ${group}`)
    this.take(it, itb)
    this.tables.push({ bb, ib, it })
  }

  groupFree(g: number): number {
    const first = groupFirstBlock(this.geo, g)
    const last = groupLastBlock(this.geo, g)
    return last - first + 1 - this.map.countUsed(first, last + 1)
  }

  /** get_midpoint_journal_block. */
  journalGoal(): number {
    const { geo } = this
    let group = groupOfBlock(geo, Math.floor((geo.blocksCount - geo.firstDataBlock) / 2))
    let start: number
    if (group > FLEX) {
      group &= ~(FLEX - 1)
      while (group < geo.groupCount && this.groupFree(group) === 0) group++
      if (group === geo.groupCount) group = 0
      start = group
    } else {
      start = group > 0 ? group - 1 : group
    }
    const end = group + 1 < geo.groupCount ? group + 1 : group
    let best = start
    for (let g = start + 1; g <= end; g++) if (this.groupFree(g) > this.groupFree(best)) best = g
    return groupFirstBlock(geo, best)
  }

  /**
   * ext2fs_fallocate of a new file: free blocks in order from goal, one extent per run (at most
   * 32768 long). When a fifth extent no longer fits in the inode, the tree grows a leaf block,
   * placed as extent.c's extent_node_split places it: at the first free block from the one before
   * the first extent (blocks already taken for the fifth extent stay where they are).
   */
  fill(goal: number, count: number): { runs: Run[]; leaf: number | undefined } {
    const { map, geo } = this
    const runs: Run[] = []
    let leaf: number | undefined
    let at = goal
    let logical = 0
    while (logical < count) {
      let b = map.findFirst(at, geo.blocksCount, false)
      if (b < 0) b = map.findFirst(geo.firstDataBlock, at, false)
      if (b < 0) throw new MkfsError('MKFS_TOO_SMALL', `no room for a journal of ${count} blocks`)
      let end = map.findFirst(b, geo.blocksCount, true)
      if (end < 0) end = geo.blocksCount
      const len = Math.min(end - b, count - logical, MAX_EXTENT_LEN)
      this.take(b, len)
      runs.push({ block: logical, start: b, len })
      if (runs.length === INODE_EXTENTS + 1) leaf = this.newBlock((runs[0]?.start ?? 1) - 1)
      if (runs.length > LEAF_EXTENTS(geo.blockSize)) throw new MkfsError('MKFS_UNSUPPORTED', `the journal would take more than ${LEAF_EXTENTS(geo.blockSize)} extents (try fewer --journal-blocks)`)
      logical += len
      at = b + len
    }
    return { runs, leaf }
  }
}

/** Extents one leaf block holds: (block size - header - checksum tail) / 12. */
function LEAF_EXTENTS(blockSize: number): number {
  return Math.floor((blockSize - 12 - 4) / 12)
}

export function place(geo: Geometry): Plan {
  const p = new Placer(geo)
  for (let g = 0; g < geo.groupCount; g++) {
    if (groupHasSuper(g)) p.map.mark(groupFirstBlock(geo, g), 1 + geo.descBlocks + geo.reservedGdtBlocks)
  }
  for (let g = 0; g < geo.groupCount; g++) p.allocateGroupTables(g)
  const tablesUsed = p.map.countUsed(geo.firstDataBlock, geo.blocksCount)
  // Blocks of a new inode go to the start of its flex group (ext2fs_find_inode_goal).
  const inodeGoal = (ino: number): number => groupFirstBlock(geo, Math.floor((ino - 1) / geo.inodesPerGroup) & ~(FLEX - 1))
  const rootBlock = p.newBlock(inodeGoal(ROOT_INO))
  const lpfCount = Math.min(LPF_MAX_BLOCKS, Math.max(2, Math.ceil(LPF_BYTES / geo.blockSize)))
  const lpf: number[] = [p.newBlock(inodeGoal(LPF_INO))]
  for (let i = 1; i < lpfCount; i++) lpf.push(p.newBlock((lpf[i - 1] ?? 0) + 1))
  if (lpf.some((b, i) => b !== (lpf[0] ?? 0) + i)) throw new MkfsError('MKFS_UNSUPPORTED', 'lost+found blocks are not contiguous')
  const resizeDind = p.newBlock(geo.firstDataBlock + geo.descBlocks + geo.reservedGdtBlocks + 2 + geo.inodeBlocksPerGroup)
  const { runs: journal, leaf: journalLeaf } = p.fill(p.journalGoal(), geo.journalBlocks)
  return {
    geo,
    map: p.map,
    groups: groupPlans(geo, p),
    rootBlock,
    lpfBlocks: { block: 0, start: lpf[0] ?? 0, len: lpfCount },
    resizeDind,
    journal,
    journalLeaf,
    // The blocks before the first data block (block 0 of a 1 KiB file system) count as overhead too.
    overhead: geo.firstDataBlock + tablesUsed + geo.journalBlocks,
    freeBlocks: geo.blocksCount - geo.firstDataBlock - p.map.countUsed(geo.firstDataBlock, geo.blocksCount),
    freeInodes: geo.inodesCount - FIRST_INO,
  }
}

function groupPlans(geo: Geometry, p: Placer): GroupPlan[] {
  const ipg = geo.inodesPerGroup
  // initialize.c: itable_unused counts the reserved inodes 1..s_first_ino as used, spilling over groups.
  let reserved = FIRST_INO
  const out: GroupPlan[] = []
  for (let g = 0; g < geo.groupCount; g++) {
    const inReserved = Math.min(ipg, reserved)
    reserved -= inReserved
    const t = p.tables[g]
    if (t === undefined) throw new Error(`group ${g} has no tables`)
    const dirs = [ROOT_INO, LPF_INO].filter((ino) => Math.floor((ino - 1) / ipg) === g).length
    out.push({
      blockBitmap: t.bb,
      inodeBitmap: t.ib,
      inodeTable: t.it,
      freeBlocks: p.groupFree(g),
      freeInodes: ipg - inReserved,
      usedDirs: dirs,
      itableUnused: ipg - inReserved,
      // The last group's bitmap carries padding bits, so it is always written (initialize.c).
      blockUninit: g !== geo.groupCount - 1 && !p.touched.has(g),
      inodeUninit: inReserved === 0,
    })
  }
  return out
}
