/*
 * The resize inode (inode 7, resize_inode): block-mapped, with only its
 * double-indirect block set. That block names the reserved GDT blocks after
 * the descriptor table of group 0 (at slot (desc_blocks + i) mod
 * entries-per-block), and each of those, used as an indirect block, names
 * the same reserved block in every group that holds a superblock backup
 * (e2fsck check_resize_inode). Everything else in them is zero, and i_blocks
 * counts the DIND block, the reserved blocks and all their backups.
 */
import { hasFeature } from '../format/features.ts'
import type { Inode } from '../format/inode.ts'
import { blocksIn512 } from '../format/inode.ts'
import type { FsckContext } from './context.ts'
import { gdtBlocks, groupStart, hasSuperBackup } from './pass1-super.ts'

const RESIZE_INO = 7
/** i_block[13], EXT2_DIND_BLOCK. */
const DIND_SLOT = 13
const I_BLOCK_SLOTS = 15

export async function checkResizeInode(ctx: FsckContext, inode: Inode): Promise<void> {
  const { sb, blockSize: bs, blocksCount, groupCount } = ctx.img
  const bad = (why: string, block?: number): void => {
    ctx.report.add(1, 'RESIZE_INODE_INVALID', `resize inode: ${why}`, block === undefined ? { ino: RESIZE_INO } : { ino: RESIZE_INO, block })
  }
  if (!hasFeature(sb, 'compat', 'resize_inode')) return
  const dind = inode.block.readUInt32LE(DIND_SLOT * 4)
  for (let slot = 0; slot < I_BLOCK_SLOTS; slot++) {
    if (slot !== DIND_SLOT && inode.block.readUInt32LE(slot * 4) !== 0) { bad(`i_block[${slot}] is not zero`); return; }
  }
  if (dind === 0) {
    if (sb.reservedGdtBlocks > 0) bad(`no double-indirect block for ${sb.reservedGdtBlocks} reserved GDT blocks`)
    return
  }
  if (dind < sb.firstDataBlock || dind >= blocksCount) { bad(`double-indirect block ${dind} outside the file system`, dind); return; }
  if (ctx.claim(1, dind, 1, 'resize inode double-indirect block', RESIZE_INO) !== 'ok') return
  const perBlock = bs / 4
  const dindBuf = await ctx.img.readBlocks(dind, 1, 'resize inode')
  const want = new Map<number, number>()
  const first = sb.firstDataBlock + 1 + gdtBlocks(ctx)
  for (let i = 0; i < sb.reservedGdtBlocks; i++) want.set((gdtBlocks(ctx) + i) % perBlock, first + i)
  for (let slot = 0; slot < perBlock; slot++) {
    const have = dindBuf.readUInt32LE(slot * 4)
    if (have !== (want.get(slot) ?? 0)) { bad(`double-indirect entry ${slot} is ${have}, expected ${want.get(slot) ?? 0}`, dind); return; }
  }
  const backups: number[] = []
  for (let g = 1; g < groupCount; g++) if (hasSuperBackup(ctx, g)) backups.push(groupStart(ctx, g) - sb.firstDataBlock)
  for (let i = 0; i < sb.reservedGdtBlocks; i++) {
    const pblk = first + i
    const ind = await ctx.img.readBlocks(pblk, 1, 'resize inode reserved GDT block')
    for (let slot = 0; slot < perBlock; slot++) {
      const expected = slot < backups.length ? pblk + (backups[slot] ?? 0) : 0
      const have = ind.readUInt32LE(slot * 4)
      if (have !== expected) { bad(`reserved GDT block ${pblk} entry ${slot} is ${have}, expected ${expected}`, pblk); return; }
    }
  }
  const blocks = 1 + sb.reservedGdtBlocks * (1 + Math.min(backups.length, perBlock))
  const have = blocksIn512(inode, bs)
  if (have !== blocks * (bs / 512)) bad(`i_blocks ${have}, counted ${blocks * (bs / 512)}`)
}
