/*
 * Pass 5 repair: each group's block and inode bitmaps rewritten from what
 * passes 1-4 found in use (padding bits past the group's end set, as the
 * kernel keeps them), their checksums in the descriptor, the descriptor's
 * free and directory counts and checksum, then the superblock's totals: what
 * e2fsck -fy does after "Block bitmap differences ... Fix? yes". An
 * uninitialised bitmap that still describes the group stays uninitialised;
 * one that does not is written and its flag cleared (an inode bitmap written
 * makes its group's block bitmap written too, as the allocator does). Only a
 * block that differs is written. Refused while pass 1 left a problem that
 * may have hidden blocks in use (an unreadable extent tree): rebuilding then
 * would free them.
 */
import { crc32cUpdate } from '../../crc32c.ts'
import { setBits } from '../../alloc/bitmap.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT } from '../../format/group-desc.ts'
import type { GroupDesc } from '../../format/group-desc.ts'
import { S_IFDIR } from '../../format/inode.ts'
import { descSize, is64bit } from '../../format/superblock.ts'
import { csumSeed } from '../../reader/csum-verifier.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { BitSet } from '../bitset.ts'
import type { FsckContext } from '../context.ts'
import { groupBlocks, groupStart } from '../pass1-super.ts'
import { updateDesc, updateSuperblock } from './gd-write.ts'
import { fixed, left, MAP_NEUTRAL } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const PASS5 = new Set(['BLOCK_BITMAP_DIFF', 'BLOCK_BITMAP_PADDING', 'INODE_BITMAP_DIFF', 'INODE_BITMAP_PADDING', 'GROUP_FREE_BLOCKS_WRONG', 'GROUP_FREE_INODES_WRONG', 'GROUP_USED_DIRS_WRONG', 'BITMAP_CSUM', 'GROUP_DESC_CSUM'])

/** A bitmap block: bits [0, n) from inUse, the rest of the block set. */
function buildMap(bs: number, n: number, inUse: (i: number) => boolean): Buffer {
  const map = Buffer.alloc(bs)
  for (let i = 0; i < n; i++) if (inUse(i)) map[i >>> 3] = (map[i >>> 3] ?? 0) | (1 << (i & 7))
  setBits(map, n, bs * 8)
  return map
}

/** Bitmap checksum as the descriptor keeps it (16 bits in a 32-byte descriptor). */
function mapCsum(ctx: FsckContext, map: Buffer, bits: number): number {
  const c = crc32cUpdate(csumSeed(ctx.img.sb), map.subarray(0, bits / 8))
  return descSize(ctx.img.sb) >= 64 ? c : c & 0xffff
}

/** Write map over block when it differs in its first bits bits (the part the kernel and e2fsck read). True when written. */
async function writeMap(h: MetaTxn, block: number, map: Buffer, bits: number, uninit: boolean): Promise<boolean> {
  const buf = uninit ? h.fresh(block) : await h.get(block)
  if (!uninit && buf.subarray(0, bits / 8).equals(map.subarray(0, bits / 8))) return false
  map.copy(buf)
  h.dirty(block)
  return true
}

export async function repairBitmaps({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const mine = problems.filter((p) => p.pass === 5 || p.code === 'GROUP_DESC_CSUM')
  if (!mine.some((p) => PASS5.has(p.code))) return []
  const hiding = problems.filter((p) => p.pass === 1 && p.severity === 'error' && !MAP_NEUTRAL.has(p.code))
  if (hiding.length > 0) {
    const why = `not rewritten: pass 1 found ${[...new Set(hiding.map((p) => p.code))].join(', ')}, which may hide blocks in use`
    return mine.filter((p) => p.severity === 'error').map((p) => left(p.pass, p.code, `${p.message} (${why})`))
  }
  const { sb, blockSize: bs } = ctx.img
  const out: Repair[] = []
  const csum = ctx.csum
  let freeBlocks = 0
  let freeInodes = 0
  for (const [g, gd0] of ctx.groups.entries()) {
    const start = groupStart(ctx, g)
    const nb = groupBlocks(ctx, g)
    const ipg = sb.inodesPerGroup
    const firstIno = g * ipg + 1
    const inside = (b: number): boolean => b >= sb.firstDataBlock && b < ctx.img.blocksCount
    if (!inside(gd0.blockBitmap) || !inside(gd0.inodeBitmap)) continue
    const blocks = buildMap(bs, nb, (i) => ctx.blocks.get(start + i))
    const inodes = buildMap(bs, ipg, (i) => ctx.inodes.get(firstIno + i))
    let usedBlocks = 0
    for (let i = 0; i < nb; i++) if (ctx.blocks.get(start + i)) usedBlocks++
    let usedInodes = 0
    let dirs = 0
    for (let i = 0; i < ipg; i++) {
      if (!ctx.inodes.get(firstIno + i)) continue
      usedInodes++
      if (ctx.types[firstIno + i] === S_IFDIR >> 12) dirs++
    }
    freeBlocks += nb - usedBlocks
    freeInodes += ipg - usedInodes
    const meta: BitSet | undefined = ctx.metaBlocks
    let flags = gd0.flags
    // An uninitialised inode bitmap stays so while its group has no inode in use; otherwise both bitmaps are written.
    const writeInodes = (flags & BG_INODE_UNINIT) === 0 || usedInodes > 0
    const blockUninitOk = !writeInodes || (flags & BG_INODE_UNINIT) === 0
    let blocksKeepUninit = false
    if ((flags & BG_BLOCK_UNINIT) !== 0 && blockUninitOk) {
      blocksKeepUninit = true
      for (let i = 0; i < nb && blocksKeepUninit; i++) if ((meta?.get(start + i) === true) !== ctx.blocks.get(start + i)) blocksKeepUninit = false
    }
    const changes: string[] = []
    if (!blocksKeepUninit && (await writeMap(h, gd0.blockBitmap, blocks, sb.blocksPerGroup, (flags & BG_BLOCK_UNINIT) !== 0))) changes.push(`block bitmap (block ${gd0.blockBitmap})`)
    if (!blocksKeepUninit) flags &= ~BG_BLOCK_UNINIT
    if (writeInodes && (await writeMap(h, gd0.inodeBitmap, inodes, ipg, (flags & BG_INODE_UNINIT) !== 0))) changes.push(`inode bitmap (block ${gd0.inodeBitmap})`)
    if (writeInodes) flags &= ~BG_INODE_UNINIT
    const newFlags = flags
    const wrote = await updateDesc(ctx, h, g, (gd: GroupDesc) => {
      const was = { ...gd }
      gd.flags = newFlags
      gd.freeBlocksCount = nb - usedBlocks
      gd.freeInodesCount = ipg - usedInodes
      gd.usedDirsCount = dirs
      if (csum && (newFlags & BG_BLOCK_UNINIT) === 0) gd.blockBitmapCsum = mapCsum(ctx, blocks, sb.blocksPerGroup)
      if (csum && (newFlags & BG_INODE_UNINIT) === 0) gd.inodeBitmapCsum = mapCsum(ctx, inodes, ipg)
      if (was.flags !== gd.flags) changes.push(`flags 0x${was.flags.toString(16)} → 0x${gd.flags.toString(16)}`)
      if (was.freeBlocksCount !== gd.freeBlocksCount) changes.push(`free blocks ${was.freeBlocksCount} → ${gd.freeBlocksCount}`)
      if (was.freeInodesCount !== gd.freeInodesCount) changes.push(`free inodes ${was.freeInodesCount} → ${gd.freeInodesCount}`)
      if (was.usedDirsCount !== gd.usedDirsCount) changes.push(`directories ${was.usedDirsCount} → ${gd.usedDirsCount}`)
      if (was.blockBitmapCsum !== gd.blockBitmapCsum || was.inodeBitmapCsum !== gd.inodeBitmapCsum) changes.push('bitmap checksums')
    })
    if (wrote && changes.length === 0) changes.push('descriptor checksum')
    if (changes.length > 0) out.push(fixed(5, 'GROUP_REWRITTEN', `group ${g}: ${changes.join(', ')}`, { block: gd0.blockBitmap }))
  }
  const totals: string[] = []
  await updateSuperblock(ctx, h, (s) => {
    const was = s.freeBlocksCountLo + s.freeBlocksCountHi * 2 ** 32
    if (was !== freeBlocks) totals.push(`free blocks ${was} → ${freeBlocks}`)
    if (s.freeInodesCount !== freeInodes) totals.push(`free inodes ${s.freeInodesCount} → ${freeInodes}`)
    s.freeBlocksCountLo = freeBlocks % 2 ** 32
    if (is64bit(s)) s.freeBlocksCountHi = Math.floor(freeBlocks / 2 ** 32)
    s.freeInodesCount = freeInodes
  })
  if (totals.length > 0) out.push(fixed(5, 'SUPER_COUNTS_REWRITTEN', `superblock: ${totals.join(', ')}`))
  return out
}
