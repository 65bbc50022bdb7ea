/*
 * The resize inode (inode 7, resize_inode): block-mapped, with only its
 * double-indirect block set. That block names the reserved GDT blocks after
 * the descriptor table of group 0 (at slot (desc_blocks + i) mod
 * entries-per-block), and each of those, used as an indirect block, names
 * the same reserved block in every group that holds a superblock backup
 * (e2fsck check_resize_inode). Judged as e2fsck judges it (below: a quarter
 * of the reserved blocks, then a walk of the whole map), and i_blocks counts
 * every block the map names, the DIND block included.
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
  const first = sb.firstDataBlock + 1 + gdtBlocks(ctx)
  const backups: number[] = []
  for (let g = 1; g < groupCount; g++) if (hasSuperBackup(ctx, g)) backups.push(groupStart(ctx, g) - sb.firstDataBlock)
  // e2fsck's check_resize_inode looks at the first s_reserved_gdt_blocks / 4 reserved blocks only (so
  // it is in 1.47): each one's double-indirect slot, and in it the entries of the groups holding
  // backups. The rest of the map is judged as its pass 1 walks it, below. Judging more than that
  // would call images e2fsck passes damaged; what the walk does not see, the repair still lays out.
  for (let i = 0; i < Math.floor(sb.reservedGdtBlocks / 4); i++) {
    const slot = (gdtBlocks(ctx) + i) % perBlock
    const pblk = first + i
    const have = dindBuf.readUInt32LE(slot * 4)
    if (have !== pblk) { bad(`double-indirect entry ${slot} is ${have}, expected ${pblk}`, dind); return; }
    const ind = await ctx.img.readBlocks(pblk, 1, 'resize inode reserved GDT block')
    for (let k = 0; k < Math.min(backups.length, perBlock); k++) {
      const expected = pblk + (backups[k] ?? 0)
      const got = ind.readUInt32LE(k * 4)
      if (got !== expected) { bad(`reserved GDT block ${pblk} entry ${k} is ${got}, expected ${expected}`, pblk); return; }
    }
  }
  // Pass 1's walk of the map (check_blocks): every block it names must lie in the file system, and
  // i_blocks counts them all (the double-indirect block, each indirect block, each block those name).
  let blocks = 1
  for (let slot = 0; slot < perBlock; slot++) {
    const ind = dindBuf.readUInt32LE(slot * 4)
    if (ind === 0) continue
    if (ind < sb.firstDataBlock || ind >= blocksCount) { bad(`double-indirect entry ${slot} is ${ind}, outside the file system`, dind); return; }
    blocks++
    const indBuf = await ctx.img.readBlocks(ind, 1, 'resize inode indirect block')
    for (let k = 0; k < perBlock; k++) {
      const b = indBuf.readUInt32LE(k * 4)
      if (b === 0) continue
      if (b < sb.firstDataBlock || b >= blocksCount) { bad(`indirect block ${ind} entry ${k} is ${b}, outside the file system`, ind); return; }
      blocks++
    }
  }
  const have = blocksIn512(inode, bs)
  if (have !== blocks * (bs / 512)) bad(`i_blocks ${have}, counted ${blocks * (bs / 512)}`)
}
