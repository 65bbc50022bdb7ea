/*
 * Pass 5, the on-disk accounting against what passes 1-4 computed: each
 * group's block and inode bitmaps (and their checksums in the descriptor),
 * the padding bits past the end of the file system, each descriptor's free
 * counts and used-directory count. An uninitialised bitmap stands for its
 * implied contents (the group's own metadata; no inodes). The superblock's
 * totals are only noted: the kernel keeps them lazily, and so judges e2fsck.
 */
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT } from '../format/group-desc.ts'
import { S_IFDIR } from '../format/inode.ts'
import { freeBlocksCount } from '../format/superblock.ts'
import type { BitSet } from './bitset.ts'
import type { FsckContext } from './context.ts'
import { groupBlocks, groupStart } from './pass1-super.ts'

/** Differences listed in one problem's message; the rest are counted. */
const RANGES_SHOWN = 8

function bit(buf: Buffer | undefined, i: number): boolean {
  return buf === undefined ? false : ((buf[i >>> 3] ?? 0) & (1 << (i & 7))) !== 0
}

/** "+a-b" (in use, marked free) and "-c" (free, marked in use) ranges, as e2fsck prints bitmap differences. */
function differences(n: number, first: number, computed: (i: number) => boolean, disk: (i: number) => boolean): { count: number; text: string; at: number } {
  const ranges: string[] = []
  let count = 0
  let at = -1
  for (let i = 0; i < n; ) {
    const c = computed(i)
    if (c === disk(i)) {
      i++
      continue
    }
    let j = i + 1
    while (j < n && computed(j) === c && disk(j) !== c) j++
    count += j - i
    if (at < 0) at = first + i
    if (ranges.length < RANGES_SHOWN) ranges.push(`${c ? '+' : '-'}${first + i}${j - i > 1 ? `--${first + j - 1}` : ''}`)
    i = j
  }
  return { count, text: ranges.join(' ') + (count > 0 && ranges.length === RANGES_SHOWN ? ' ...' : ''), at }
}

export async function checkBitmaps(ctx: FsckContext): Promise<void> {
  const { sb, blockSize: bs } = ctx.img
  const r = ctx.report
  let freeBlocks = 0
  let freeInodes = 0
  for (const [g, gd] of ctx.groups.entries()) {
    const start = groupStart(ctx, g)
    const nb = groupBlocks(ctx, g)
    let blockDisk: (i: number) => boolean
    // A bitmap placed outside the file system was reported in pass 1; its group's bits are not compared.
    const inside = (b: number): boolean => b >= sb.firstDataBlock && b < ctx.img.blocksCount
    if (!inside(gd.blockBitmap) || !inside(gd.inodeBitmap)) continue
    if ((gd.flags & BG_BLOCK_UNINIT) !== 0) {
      const meta: BitSet | undefined = ctx.metaBlocks
      blockDisk = (i) => meta?.get(start + i) === true
    } else {
      const raw = await ctx.img.readBlocks(gd.blockBitmap, 1, `group ${g} block bitmap`)
      if (ctx.csum) ctx.verify(5, 'BITMAP_CSUM', 'block-bitmap', raw, { block: gd.blockBitmap, group: g, stored: gd.blockBitmapCsum })
      blockDisk = (i) => bit(raw, i)
      for (let i = nb; i < sb.blocksPerGroup; i++) {
        if (!bit(raw, i)) {
          r.add(5, 'BLOCK_BITMAP_PADDING', `group ${g}: padding at the end of the block bitmap is not set (bit ${i})`, { block: gd.blockBitmap })
          break
        }
      }
    }
    const bd = differences(nb, start, (i) => ctx.blocks.get(start + i), blockDisk)
    if (bd.count > 0) r.add(5, 'BLOCK_BITMAP_DIFF', `group ${g}: block bitmap differences: ${bd.text}`, { block: bd.at })
    let used = 0
    for (let i = 0; i < nb; i++) if (ctx.blocks.get(start + i)) used++
    freeBlocks += nb - used
    if (gd.freeBlocksCount !== nb - used) r.add(5, 'GROUP_FREE_BLOCKS_WRONG', `group ${g}: free blocks count ${gd.freeBlocksCount}, counted ${nb - used}`)

    const ipg = sb.inodesPerGroup
    const firstIno = g * ipg + 1
    let inodeDisk: (i: number) => boolean = () => false
    if ((gd.flags & BG_INODE_UNINIT) === 0) {
      const raw = await ctx.img.readBlocks(gd.inodeBitmap, 1, `group ${g} inode bitmap`)
      if (ctx.csum) ctx.verify(5, 'BITMAP_CSUM', 'inode-bitmap', raw, { block: gd.inodeBitmap, group: g, stored: gd.inodeBitmapCsum })
      inodeDisk = (i) => bit(raw, i)
      for (let i = ipg; i < bs * 8; i++) {
        if (!bit(raw, i)) {
          r.add(5, 'INODE_BITMAP_PADDING', `group ${g}: padding at the end of the inode bitmap is not set (bit ${i})`, { block: gd.inodeBitmap })
          break
        }
      }
    }
    const id = differences(ipg, firstIno, (i) => ctx.inodes.get(firstIno + i), inodeDisk)
    if (id.count > 0) r.add(5, 'INODE_BITMAP_DIFF', `group ${g}: inode bitmap differences: ${id.text}`, { ino: id.at })
    let inodesUsed = 0
    let dirs = 0
    for (let i = 0; i < ipg; i++) {
      if (!ctx.inodes.get(firstIno + i)) continue
      inodesUsed++
      if (ctx.types[firstIno + i] === S_IFDIR >> 12) dirs++
    }
    freeInodes += ipg - inodesUsed
    if (gd.freeInodesCount !== ipg - inodesUsed) r.add(5, 'GROUP_FREE_INODES_WRONG', `group ${g}: free inodes count ${gd.freeInodesCount}, counted ${ipg - inodesUsed}`)
    if (gd.usedDirsCount !== dirs) r.add(5, 'GROUP_USED_DIRS_WRONG', `group ${g}: directories count ${gd.usedDirsCount}, counted ${dirs}`)
  }
  if (freeBlocksCount(sb) !== freeBlocks) r.note(5, 'SUPER_FREE_BLOCKS', `superblock free blocks count ${freeBlocksCount(sb)}, counted ${freeBlocks}`)
  if (sb.freeInodesCount !== freeInodes) r.note(5, 'SUPER_FREE_INODES', `superblock free inodes count ${sb.freeInodesCount}, counted ${freeInodes}`)
}
