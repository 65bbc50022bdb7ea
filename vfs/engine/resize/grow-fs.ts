/*
 * Grow an ext4 file system, offline, to the size of its device (`tsnfs resize`): the groups the
 * new size adds are appended with their bitmaps, inode tables (left for lazy init, as mkfs does
 * on a device not known to read as zeros) and superblock/descriptor copies; descriptors go in the
 * existing GDT blocks or in reserved ones taken from the resize inode, whose map is then rebuilt
 * as resize2fs does (fix_resize_inode: ext2fs_create_resize_inode over the new geometry).
 *
 * Crash safety. The writes beyond the old last block come first (the old file system never reads
 * them), then a flush. Every block the old file system does read and that changes (superblock,
 * primary descriptor table, the old last group's block bitmap, the resize inode and its map) goes
 * through the journal as one transaction: committed, written home, flushed, released. A crash
 * before the commit block is durable leaves the old file system; after it, a replay (the kernel,
 * e2fsck, our engine) gives the new one. The backup superblocks and descriptor copies of the old
 * groups are rewritten last: until then they describe the old geometry, which only matters to an
 * fsck that falls back to a backup, and e2fsck refreshes them from the primary. Without a
 * journal the in-place blocks are written with the primary superblock last (flushed between), so
 * only a crash between those two flushes leaves counts for e2fsck to fix.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { crc32cUpdate } from '../crc32c.ts'
import { hasFeature, INCOMPAT, unsupportedFeatures } from '../format/features.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, decodeGroupDesc, encodeGroupDesc, GROUP_DESC_CHECKSUM_OFFSET } from '../format/group-desc.ts'
import type { GroupDesc } from '../format/group-desc.ts'
import { INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET } from '../format/inode.ts'
import {
  blocksCount, blockSize, decodeSuperblock, descSize, encodeSuperblock, EXT4_SUPER_MAGIC, freeBlocksCount, inodeSize, is64bit, reservedBlocksCount,
  SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
} from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import { Jbd2Log } from '../jbd2/journal-log.ts'
import { resizeBlocks } from '../mkfs/files.ts'
import type { Geometry } from '../mkfs/geometry.ts'
import { csumSeed, groupDescCsum, inodeCsum, superblockCsum } from '../reader/csum-verifier.ts'
import { ResizeError } from './errors.ts'
import type { FsShape, GrowPlan } from './grow-plan.ts'
import { blocksFor, hasSuper, planGrow } from './grow-plan.ts'

const RESIZE_INO = 7
const DIND_SLOT = 13
const STATE_VALID = 0x1
const STATE_ERRORS = 0x2
const I_BLOCKS_LO = 0x1c
const I_BLOCKS_HI = 0x74
const EXTRA_ISIZE_AT = 0x80

export interface GrowResult {
  oldBlocks: number
  newBlocks: number
  oldGroups: number
  newGroups: number
  blockSize: number
  /** Descriptor blocks taken from the reserved GDT blocks. */
  gdtBlocksAdded: number
  /** False when the device gave no room for another block (nothing was written). */
  grown: boolean
}

export interface GrowOptions {
  /** Blocks to grow to (default: as many as the device holds). */
  blocks?: number
  /** Bytes to grow to, rounded down to whole blocks as mkfs rounds (when `blocks` is absent). */
  bytes?: number
}

function notClean(why: string): never {
  throw new ResizeError('RESIZE_NOT_CLEAN', `${why}; run fsck (and mount once if the journal needs it) before resizing`)
}

function unsupported(why: string): never {
  throw new ResizeError('RESIZE_UNSUPPORTED', why)
}

/** The superblock, checked for everything that would make growing unsafe or beyond our layout. */
function checkSuperblock(raw: Buffer): Superblock {
  const sb = decodeSuperblock(raw)
  if (sb.magic !== EXT4_SUPER_MAGIC) throw new ResizeError('RESIZE_BAD_FS', 'no ext4 superblock at byte 1024')
  if (!hasFeature(sb, 'ro_compat', 'metadata_csum')) unsupported('resize grows file systems with metadata_csum (as tsnfs mkfs and mkfs.ext4 make them); this one has none')
  if (superblockCsum(raw) !== sb.checksum) throw new ResizeError('RESIZE_BAD_FS', 'the superblock checksum does not match; run fsck first')
  if (hasFeature(sb, 'incompat', 'meta_bg')) unsupported('meta_bg scatters the descriptor table; resize grows only a contiguous one')
  if (hasFeature(sb, 'ro_compat', 'bigalloc')) unsupported('bigalloc (clusters larger than a block) is not grown')
  if (hasFeature(sb, 'compat', 'sparse_super2')) unsupported('sparse_super2 (two backup groups) is not grown')
  if (!hasFeature(sb, 'ro_compat', 'sparse_super')) unsupported('resize needs sparse_super (backups in groups 0, 1 and powers of 3, 5, 7)')
  const unknown = unsupportedFeatures(sb)
  if (unknown.length > 0) unsupported(`features this build does not write: ${unknown.join(', ')}`)
  if (hasFeature(sb, 'incompat', 'needs_recovery')) notClean('the journal holds transactions not yet replayed')
  if ((sb.state & STATE_VALID) === 0) notClean('the file system was not cleanly unmounted')
  if ((sb.state & STATE_ERRORS) !== 0) notClean('the file system has errors recorded')
  if (sb.lastOrphan !== 0 || hasFeature(sb, 'ro_compat', 'orphan_present')) notClean('orphan inodes are waiting to be released')
  const ds = descSize(sb)
  if (ds !== 32 && ds !== 64) unsupported(`group descriptors of ${ds} bytes (32 or 64 are grown)`)
  if (sb.blocksPerGroup !== sb.clustersPerGroup) unsupported('clusters per group differ from blocks per group')
  return sb
}

function shapeOf(sb: Superblock): FsShape {
  return {
    blockSize: blockSize(sb),
    firstDataBlock: sb.firstDataBlock,
    blocksCount: blocksCount(sb),
    blocksPerGroup: sb.blocksPerGroup,
    inodesPerGroup: sb.inodesPerGroup,
    inodeSize: inodeSize(sb),
    descSize: descSize(sb),
    reservedGdtBlocks: sb.reservedGdtBlocks,
    sparseSuper: true,
    is64bit: is64bit(sb),
  }
}

/** Bitmap checksum as the descriptor stores it: 32 bits, or the low 16 with 32-byte descriptors. */
function bitmapCsum(seed: number, bitmap: Buffer, bits: number, ds: number): number {
  const c = crc32cUpdate(seed, bitmap.subarray(0, bits / 8))
  return ds >= 64 ? c >>> 0 : c & 0xffff
}

function encodeDesc(gd: GroupDesc, group: number, seed: number, ds: 32 | 64): Buffer {
  const raw = encodeGroupDesc({ ...gd, checksum: 0 }, ds)
  raw.writeUInt16LE(groupDescCsum(seed, group, raw), GROUP_DESC_CHECKSUM_OFFSET)
  return raw
}

function setBits(bitmap: Buffer, from: number, to: number, on: boolean): void {
  for (let i = from; i < to; i++) {
    const b = bitmap[i >>> 3] ?? 0
    bitmap[i >>> 3] = on ? b | (1 << (i & 7)) : b & ~(1 << (i & 7))
  }
}

/** The superblock as stored in group `group` (a copy carries its group number), checksummed. */
function superblockFor(sb: Superblock, base: Buffer, group: number): Buffer {
  const raw = encodeSuperblock({ ...sb, blockGroupNr: group }, base)
  raw.writeUInt32LE(superblockCsum(raw), SUPERBLOCK_CHECKSUM_OFFSET)
  return raw
}

/** A backup group's first block: its superblock copy at offset 0, zeros after. */
function backupSuperBlock(sb: Superblock, base: Buffer, group: number, bs: number): Buffer {
  const block = Buffer.alloc(bs)
  superblockFor(sb, base, group).copy(block, 0)
  return block
}

interface Built {
  /** Blocks past the old end: written first. */
  fresh: Map<number, Buffer>
  /** Blocks the old file system reads: one journal transaction (primary superblock block last in order). */
  inPlace: Map<number, Buffer>
  /** Old backup groups' superblock and descriptor copies: written after the transaction is home. */
  backups: Map<number, Buffer>
  /** The block of inPlace holding the primary superblock. */
  superblock: number
}

async function readBlock(dev: BlockDevice, block: number, bs: number): Promise<Buffer> {
  return dev.read(block * bs, bs)
}

/**
 * Everything to write for `plan`, from the superblock read after the journal was opened (so the
 * primary copy carries needs_recovery while the transaction is live, as the kernel's would).
 */
async function build(dev: BlockDevice, sb: Superblock, sbRaw: Buffer, plan: GrowPlan): Promise<Built> {
  const fs = shapeOf(sb)
  const bs = fs.blockSize
  const ds = fs.descSize as 32 | 64
  const seed = csumSeed(sb)
  const fdb = fs.firstDataBlock
  const bpg = fs.blocksPerGroup
  const ipg = fs.inodesPerGroup
  const fresh = new Map<number, Buffer>()
  const inPlace = new Map<number, Buffer>()
  const backups = new Map<number, Buffer>()

  // The descriptor table, old descriptors checked before anything is derived from them.
  const oldGdt = await dev.read((fdb + 1) * bs, plan.oldDescBlocks * bs)
  const gdt = Buffer.alloc(plan.newDescBlocks * bs)
  for (let g = 0; g < plan.oldGroups; g++) {
    const raw = oldGdt.subarray(g * ds, (g + 1) * ds)
    if (groupDescCsum(seed, g, raw) !== raw.readUInt16LE(GROUP_DESC_CHECKSUM_OFFSET)) {
      throw new ResizeError('RESIZE_BAD_FS', `group ${g}'s descriptor checksum does not match; run fsck first`)
    }
    raw.copy(gdt, g * ds)
  }
  const last = plan.oldGroups - 1
  if (plan.lastGroupGain > 0) {
    const gd = decodeGroupDesc(oldGdt, last * ds, ds)
    if ((gd.flags & BG_BLOCK_UNINIT) !== 0) unsupported(`the last group (${last}) has an uninitialized block bitmap`)
    const bitmap = await readBlock(dev, gd.blockBitmap, bs)
    if (bitmapCsum(seed, bitmap, bpg, ds) !== gd.blockBitmapCsum) throw new ResizeError('RESIZE_BAD_FS', `group ${last}'s block bitmap checksum does not match; run fsck first`)
    const at = plan.oldBlocks - (fdb + last * bpg)
    setBits(bitmap, at, at + plan.lastGroupGain, false)
    inPlace.set(gd.blockBitmap, bitmap)
    const next = { ...gd, freeBlocksCount: gd.freeBlocksCount + plan.lastGroupGain, blockBitmapCsum: bitmapCsum(seed, bitmap, bpg, ds) }
    encodeDesc(next, last, seed, ds).copy(gdt, last * ds)
  }
  let freeAdded = plan.lastGroupGain
  for (const ng of plan.groups) {
    const bitmap = Buffer.alloc(bs)
    setBits(bitmap, 0, ng.superBlocks + 2 + plan.inodeTableBlocks, true)
    // Bits past the group's end (a short last group, or blocks per group below the bitmap's bits) read as used.
    setBits(bitmap, ng.length, bs * 8, true)
    fresh.set(ng.blockBitmap, bitmap)
    const gd: GroupDesc = {
      blockBitmap: ng.blockBitmap,
      inodeBitmap: ng.inodeBitmap,
      inodeTable: ng.inodeTable,
      freeBlocksCount: ng.freeBlocks,
      freeInodesCount: ipg,
      usedDirsCount: 0,
      // No inode in use: the inode bitmap and table are left for lazy init, as mkfs leaves them.
      flags: BG_INODE_UNINIT,
      excludeBitmap: 0,
      blockBitmapCsum: bitmapCsum(seed, bitmap, bpg, ds),
      inodeBitmapCsum: 0,
      itableUnused: ipg,
      checksum: 0,
    }
    encodeDesc(gd, ng.group, seed, ds).copy(gdt, ng.group * ds)
    freeAdded += ng.freeBlocks
  }

  const oldBlocks = plan.oldBlocks
  const r = reservedBlocksCount(sb)
  // resize2fs keeps the reserved percentage: percent = r * 100 / blocks, then percent * new / 100.
  const newR = Math.floor((((r * 100) / oldBlocks) * plan.newBlocks) / 100)
  const newFree = freeBlocksCount(sb) + freeAdded
  const addedInodes = (plan.newGroups - plan.oldGroups) * ipg
  const hi = (n: number): number => Math.floor(n / 2 ** 32)
  const lo = (n: number): number => n % 2 ** 32
  const next: Superblock = {
    ...sb,
    blocksCountLo: lo(plan.newBlocks),
    blocksCountHi: fs.is64bit ? hi(plan.newBlocks) : sb.blocksCountHi,
    rBlocksCountLo: lo(newR),
    rBlocksCountHi: fs.is64bit ? hi(newR) : sb.rBlocksCountHi,
    freeBlocksCountLo: lo(newFree),
    freeBlocksCountHi: fs.is64bit ? hi(newFree) : sb.freeBlocksCountHi,
    inodesCount: sb.inodesCount + addedInodes,
    freeInodesCount: sb.freeInodesCount + addedInodes,
    reservedGdtBlocks: plan.newReservedGdt,
    // Counted by mkfs as the file system's own blocks; zero means "not recorded" to the kernel.
    overheadClusters: sb.overheadClusters === 0 ? 0 : sb.overheadClusters + plan.newOverhead,
  }

  // Superblock and descriptor copies in the new groups that hold them.
  const gdtBlock = (i: number): Buffer => gdt.subarray(i * bs, (i + 1) * bs)
  // Backups never say needs_recovery: only the primary speaks for the journal.
  const backupCopy = { ...next, featureIncompat: (next.featureIncompat & ~INCOMPAT.needs_recovery) >>> 0 }
  for (const ng of plan.groups) {
    if (ng.superBlocks === 0) continue
    fresh.set(ng.first, backupSuperBlock(backupCopy, sbRaw, ng.group, bs))
    for (let i = 0; i < plan.newDescBlocks; i++) fresh.set(ng.first + 1 + i, gdtBlock(i))
  }
  // The primary superblock's block (byte 1024: block 0 of a larger block size, block 1 of 1 KiB).
  const sbBlockNo = Math.floor(SUPERBLOCK_OFFSET / bs)
  const sbBlock = await readBlock(dev, sbBlockNo, bs)
  superblockFor(next, sbRaw, 0).copy(sbBlock, SUPERBLOCK_OFFSET % bs)
  for (let i = 0; i < plan.newDescBlocks; i++) inPlace.set(fdb + 1 + i, gdtBlock(i))
  if (hasFeature(sb, 'compat', 'resize_inode')) await rebuildResizeInode(dev, sb, oldGdt, plan, seed, inPlace)
  inPlace.set(sbBlockNo, sbBlock)
  for (let g = 1; g < plan.oldGroups; g++) {
    if (!hasSuper(fs, g)) continue
    const first = fdb + g * bpg
    backups.set(first, backupSuperBlock(backupCopy, sbRaw, g, bs))
    for (let i = 0; i < plan.newDescBlocks; i++) backups.set(first + 1 + i, gdtBlock(i))
  }
  return { fresh, inPlace, backups, superblock: sbBlockNo }
}

/**
 * res_gdt.c over the new geometry: the double-indirect block lists the primary reserved GDT
 * blocks left, each of those lists its copies in every backup group of the grown file system,
 * and i_blocks counts them all (resize2fs fix_resize_inode).
 */
async function rebuildResizeInode(dev: BlockDevice, sb: Superblock, oldGdt: Buffer, plan: GrowPlan, seed: number, out: Map<number, Buffer>): Promise<void> {
  const fs = shapeOf(sb)
  const bs = fs.blockSize
  const isz = fs.inodeSize
  const gd0 = decodeGroupDesc(oldGdt, 0, fs.descSize)
  const index = RESIZE_INO - 1
  const tableBlock = gd0.inodeTable + Math.floor((index * isz) / bs)
  const at = (index * isz) % bs
  const block = out.get(tableBlock) ?? (await readBlock(dev, tableBlock, bs))
  const raw = block.subarray(at, at + isz)
  const dind = raw.readUInt32LE(0x28 + DIND_SLOT * 4)
  if (dind < fs.firstDataBlock || dind >= plan.oldBlocks) throw new ResizeError('RESIZE_BAD_FS', `the resize inode's double-indirect block ${dind} is outside the file system; run fsck first`)
  const geo: Geometry = {
    blockSize: bs,
    logBlockSize: sb.logBlockSize,
    firstDataBlock: fs.firstDataBlock,
    blocksCount: plan.newBlocks,
    rBlocksCount: 0,
    blocksPerGroup: fs.blocksPerGroup,
    groupCount: plan.newGroups,
    descBlocks: plan.newDescBlocks,
    reservedGdtBlocks: plan.newReservedGdt,
    inodesPerGroup: fs.inodesPerGroup,
    inodesCount: fs.inodesPerGroup * plan.newGroups,
    inodeBlocksPerGroup: plan.inodeTableBlocks,
    journalBlocks: 0,
    bytesPerInode: 0,
  }
  const { blocks, count } = resizeBlocks(geo, dind)
  for (const [b, data] of blocks) out.set(b, data)
  const i512 = count * (bs / 512)
  raw.writeUInt32LE(i512 % 2 ** 32, I_BLOCKS_LO)
  if (hasFeature(sb, 'ro_compat', 'huge_file')) raw.writeUInt16LE(Math.floor(i512 / 2 ** 32), I_BLOCKS_HI)
  const generation = raw.readUInt32LE(0x64)
  const csum = inodeCsum(seed, RESIZE_INO, generation, raw)
  raw.writeUInt16LE(csum & 0xffff, INODE_CHECKSUM_LO_OFFSET)
  const extra = isz > 128 ? raw.readUInt16LE(EXTRA_ISIZE_AT) : 0
  if (INODE_CHECKSUM_HI_OFFSET + 2 <= 128 + extra) raw.writeUInt16LE(csum >>> 16, INODE_CHECKSUM_HI_OFFSET)
  out.set(tableBlock, block)
}

/** Writes blocks in ascending order, one write per run of consecutive blocks. */
async function writeAll(dev: BlockDevice, blocks: ReadonlyMap<number, Buffer>, bs: number): Promise<void> {
  const order = [...blocks.keys()].sort((a, b) => a - b)
  for (let i = 0; i < order.length; ) {
    let j = i + 1
    while (j < order.length && order[j] === (order[j - 1] ?? 0) + 1 && j - i < 256) j++
    const data = Buffer.concat(order.slice(i, j).map((b) => blocks.get(b) ?? Buffer.alloc(bs)))
    await dev.write((order[i] ?? 0) * bs, data)
    i = j
  }
}

/** Reads the superblock and returns the plan for growing to `opts.blocks` or the device's size (undefined: no room to grow). */
export async function planForDevice(dev: BlockDevice, opts: GrowOptions = {}): Promise<{ sb: Superblock; plan: GrowPlan | undefined }> {
  if (dev.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) throw new ResizeError('RESIZE_BAD_FS', `${dev.size} bytes is too small to hold an ext4 superblock`)
  const sb = checkSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
  const fs = shapeOf(sb)
  const fits = blocksFor(fs, dev.size)
  if (opts.bytes !== undefined && opts.bytes > dev.size) throw new ResizeError('RESIZE_TOO_LARGE', `${opts.bytes} bytes is more than the device's ${dev.size}`)
  const wanted = opts.blocks ?? (opts.bytes === undefined ? fits : blocksFor(fs, opts.bytes))
  if (wanted > fits) throw new ResizeError('RESIZE_TOO_LARGE', `${wanted} blocks of ${fs.blockSize} bytes do not fit the device's ${dev.size} bytes (${fits} blocks)`)
  return { sb, plan: planGrow(fs, wanted) }
}

/**
 * Grows the file system on `dev` to `opts.blocks` (default: all of the device). Refused with a
 * ResizeError: shrinking, a file system not clean, a layout we do not grow, more descriptor
 * blocks than exist plus the reserved ones.
 */
export async function growFileSystem(dev: BlockDevice, opts: GrowOptions = {}): Promise<GrowResult> {
  const { sb, plan } = await planForDevice(dev, opts)
  const fs = shapeOf(sb)
  const bs = fs.blockSize
  if (plan === undefined) {
    const groups = Math.ceil((fs.blocksCount - fs.firstDataBlock) / fs.blocksPerGroup)
    return { oldBlocks: fs.blocksCount, newBlocks: fs.blocksCount, oldGroups: groups, newGroups: groups, blockSize: bs, gdtBlocksAdded: 0, grown: false }
  }
  const journaled = hasFeature(sb, 'compat', 'has_journal')
  const log = journaled ? await Jbd2Log.open(dev) : undefined
  // Once the commit is durable and until its blocks are home, the log must stay as it is: a
  // replay is what finishes the grow then.
  let committed = false
  try {
    // Read again: opening the log set needs_recovery, and the journaled copy must carry it.
    const sbRaw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
    const built = await build(dev, decodeSuperblock(sbRaw), sbRaw, plan)
    if (log !== undefined && log.cost(built.inPlace.size, 0) > log.free) {
      throw new ResizeError('RESIZE_JOURNAL_FULL', `the metadata change takes ${log.cost(built.inPlace.size, 0)} journal blocks; the journal has ${log.free} free`)
    }
    await writeAll(dev, built.fresh, bs)
    await dev.flush()
    if (log !== undefined) {
      await log.commit(1, [...built.inPlace].map(([block, data]) => ({ block, data })), [])
      committed = true
    }
    if (log !== undefined) {
      await writeAll(dev, built.inPlace, bs)
      await dev.flush()
      await log.release(1)
    } else {
      // No journal: everything else first, the primary superblock (which makes the new groups count) last.
      const sbBlock = built.inPlace.get(built.superblock)
      built.inPlace.delete(built.superblock)
      await writeAll(dev, built.inPlace, bs)
      await dev.flush()
      if (sbBlock !== undefined) await dev.write(built.superblock * bs, sbBlock)
      await dev.flush()
    }
    committed = false
    await writeAll(dev, built.backups, bs)
    await dev.flush()
  } finally {
    // Empties the log and clears needs_recovery (flushed), unless a committed transaction is not home yet.
    if (log !== undefined && !committed) await log.close()
  }
  return {
    oldBlocks: plan.oldBlocks,
    newBlocks: plan.newBlocks,
    oldGroups: plan.oldGroups,
    newGroups: plan.newGroups,
    blockSize: bs,
    gdtBlocksAdded: plan.newDescBlocks - plan.oldDescBlocks,
    grown: true,
  }
}
