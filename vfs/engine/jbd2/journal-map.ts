/*
 * Where the journal lives: the blocks of the journal inode (s_journal_inum, normally 8), found by a
 * small walk of its extent tree straight off the device. The reader (reader/image.ts) refuses an
 * image that needs recovery, and recovery is what needs this map, so it cannot go through it.
 * Every number read is checked before use; a journal that is not one whole, extent-mapped,
 * written file inside the file system is JBD2_BAD_JOURNAL_INODE.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { FormatError } from '../format/errors.ts'
import { decodeExtentNode, EXT4_MAX_EXTENT_DEPTH } from '../format/extent.ts'
import type { Extent } from '../format/extent.ts'
import { hasFeature } from '../format/features.ts'
import { decodeGroupDesc } from '../format/group-desc.ts'
import { decodeInode, I_BLOCK_SIZE, INODE_FLAGS } from '../format/inode.ts'
import {
  blocksCount, blockSize, decodeSuperblock, descSize, EXT4_SUPER_MAGIC, inodeSize, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
} from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import { Jbd2Error } from './errors.ts'
import { JBD2_MIN_JOURNAL_BLOCKS } from './superblock.ts'

/** The journal's blocks: log block i lives at file-system block phys(i). */
export interface JournalMap {
  readonly blockSize: number
  /** File-system blocks (a replayed tag must name one of them). */
  readonly fsBlocks: number
  /** Journal blocks mapped (i_size / block size). */
  readonly blocks: number
  phys(logBlock: number): number
}

export interface JournalLocation {
  /** The fs superblock as read (1024 bytes at byte 1024) and decoded. */
  rawSuperblock: Buffer
  sb: Superblock
  map: JournalMap
}

/** Read the fs superblock and map the journal inode. */
export async function locateJournal(dev: BlockDevice): Promise<JournalLocation> {
  if (dev.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) throw new FormatError('EXT4_TRUNCATED', `device of ${dev.size} bytes ends before the superblock`)
  const raw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  const sb = decodeSuperblock(raw)
  if (sb.magic !== EXT4_SUPER_MAGIC) throw new FormatError('EXT4_BAD_MAGIC', `bad magic 0x${sb.magic.toString(16)} (not ext2/3/4)`)
  if (sb.logBlockSize > 6) throw new FormatError('EXT4_BAD_BLOCK_SIZE', `block size 2^${10 + sb.logBlockSize} outside 1024..65536`)
  const bad = (m: string): Jbd2Error => new Jbd2Error('JBD2_BAD_JOURNAL_INODE', m)
  if (!hasFeature(sb, 'compat', 'has_journal')) throw bad('the file system has no journal (has_journal is off)')
  if (hasFeature(sb, 'incompat', 'journal_dev') || sb.journalInum === 0) throw bad('external journals are not supported')
  const bs = blockSize(sb)
  const fsBlocks = blocksCount(sb)
  if (fsBlocks * bs > dev.size) throw new FormatError('EXT4_IMAGE_TOO_SMALL', `the superblock counts ${fsBlocks} blocks of ${bs}, the device holds ${dev.size} bytes`)
  const ino = sb.journalInum
  if (sb.inodesPerGroup < 1 || ino > sb.inodesCount) throw bad(`journal inode ${ino} outside 1..${sb.inodesCount}`)
  const group = Math.floor((ino - 1) / sb.inodesPerGroup)
  const dsize = descSize(sb)
  if (dsize !== 32 && dsize < 64) throw bad(`group descriptor size ${dsize}`)
  const gdAt = (sb.firstDataBlock + 1) * bs + group * dsize
  if (gdAt + dsize > fsBlocks * bs) throw bad(`group descriptor ${group} outside the file system`)
  const gd = decodeGroupDesc(await dev.read(gdAt, dsize), 0, dsize)
  const isz = inodeSize(sb)
  if (isz < 128 || isz > bs) throw bad(`inode size ${isz}`)
  const inodeAt = gd.inodeTable * bs + ((ino - 1) % sb.inodesPerGroup) * isz
  if (gd.inodeTable < 1 || inodeAt + isz > fsBlocks * bs) throw bad(`inode table of group ${group} at block ${gd.inodeTable} outside the file system`)
  let inode
  try {
    inode = decodeInode(await dev.read(inodeAt, isz), 0, isz, false)
  } catch (err) {
    if (err instanceof RangeError) throw bad(`journal inode ${ino}: ${err.message}`)
    throw err
  }
  if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) throw bad(`journal inode ${ino} is not extent-mapped`)
  if (inode.size % bs !== 0) throw bad(`journal inode ${ino}: size ${inode.size} not a multiple of the block size ${bs}`)
  const blocks = inode.size / bs
  if (blocks < JBD2_MIN_JOURNAL_BLOCKS || blocks > 2 ** 32 - 1) throw bad(`journal inode ${ino}: ${blocks} blocks (${JBD2_MIN_JOURNAL_BLOCKS}..2^32-1)`)
  const extents = await collectExtents(dev, inode.block, bs, fsBlocks, blocks, ino)
  return { rawSuperblock: raw, sb, map: new ExtentJournalMap(bs, fsBlocks, blocks, extents) }
}

/**
 * Every extent of the tree, in logical order, checked to cover [0, blocks) without holes or
 * unwritten parts and to stay inside the file system. Nodes visited are capped by `blocks`: a
 * tree with more nodes than the journal has blocks cannot be a journal's.
 */
async function collectExtents(dev: BlockDevice, root: Buffer, bs: number, fsBlocks: number, blocks: number, ino: number): Promise<Extent[]> {
  const bad = (m: string): Jbd2Error => new Jbd2Error('JBD2_BAD_JOURNAL_INODE', `journal inode ${ino}: ${m}`)
  const out: Extent[] = []
  let next = 0
  let nodes = 0
  const walk = async (buf: Buffer, size: number, depth: number | undefined, where: string): Promise<void> => {
    if (++nodes > blocks) throw bad('extent tree larger than the journal')
    let node
    try {
      node = decodeExtentNode(buf, size, where)
    } catch (err) {
      if (err instanceof FormatError) throw bad(err.message)
      throw err
    }
    if (depth !== undefined && node.header.depth !== depth) throw bad(`${where} at depth ${node.header.depth}, expected ${depth}`)
    if (node.header.depth > EXT4_MAX_EXTENT_DEPTH) throw bad(`${where}: depth ${node.header.depth}`)
    for (const ix of node.indexes) {
      if (next >= blocks) return
      if (ix.leaf < 1 || ix.leaf >= fsBlocks) throw bad(`${where}: index to block ${ix.leaf} outside the file system`)
      await walk(await dev.read(ix.leaf * bs, bs), bs, node.header.depth - 1, `extent block ${ix.leaf}`)
    }
    for (const e of node.extents) {
      if (next >= blocks) return
      if (e.block !== next) throw bad(`hole at logical block ${next} (next extent starts at ${e.block})`)
      if (e.uninit) throw bad(`unwritten extent at logical block ${e.block}`)
      if (e.start < 1 || e.start + e.len > fsBlocks) throw bad(`extent ${e.block}+${e.len} at blocks ${e.start}.. outside the file system`)
      out.push(e)
      next += e.len
    }
  }
  await walk(root, I_BLOCK_SIZE, undefined, 'extent root')
  if (next < blocks) throw bad(`extents cover ${next} of its ${blocks} blocks`)
  return out
}

class ExtentJournalMap implements JournalMap {
  readonly blockSize: number
  readonly fsBlocks: number
  readonly blocks: number
  private readonly extents: readonly Extent[]

  constructor(blockSize: number, fsBlocks: number, blocks: number, extents: readonly Extent[]) {
    this.blockSize = blockSize
    this.fsBlocks = fsBlocks
    this.blocks = blocks
    this.extents = extents
  }

  phys(logBlock: number): number {
    if (!Number.isInteger(logBlock) || logBlock < 0 || logBlock >= this.blocks) throw new RangeError(`journal block ${logBlock} outside 0..${this.blocks - 1}`)
    let lo = 0
    let hi = this.extents.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if ((this.extents[mid]?.block ?? Infinity) <= logBlock) lo = mid
      else hi = mid - 1
    }
    const e = this.extents[lo]
    if (e === undefined) throw new RangeError(`journal block ${logBlock} unmapped`)
    return e.start + (logBlock - e.block)
  }
}
