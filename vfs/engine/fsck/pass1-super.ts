/*
 * Pass 1, the fixed metadata: the superblock's own consistency, then each
 * group descriptor (checksum, where its bitmaps and inode table lie, its
 * counts), and every block the layout itself uses (superblock copies, the
 * descriptor table and its reserve, bitmaps, inode tables) marked in the map.
 */
import { hasFeature } from '../format/features.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, decodeGroupDesc } from '../format/group-desc.ts'
import { descSize, freeBlocksCount, reservedBlocksCount, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../format/superblock.ts'
import type { FsckContext } from './context.ts'

/** Does group g hold a copy of the superblock and descriptor table (sparse_super, sparse_super2)? */
export function hasSuperBackup(ctx: FsckContext, g: number): boolean {
  const sb = ctx.img.sb
  if (g === 0) return true
  if (hasFeature(sb, 'compat', 'sparse_super2')) return g === sb.backupBgs0 || g === sb.backupBgs1
  if (!hasFeature(sb, 'ro_compat', 'sparse_super')) return true
  if (g === 1) return true
  for (const p of [3, 5, 7]) {
    let n = p
    while (n < g) n *= p
    if (n === g) return true
  }
  return false
}

export function gdtBlocks(ctx: FsckContext): number {
  return Math.ceil((ctx.img.groupCount * descSize(ctx.img.sb)) / ctx.img.blockSize)
}

/** First block of group g. */
export function groupStart(ctx: FsckContext, g: number): number {
  return ctx.img.sb.firstDataBlock + g * ctx.img.sb.blocksPerGroup
}

/** Blocks in group g (the last group may be short). */
export function groupBlocks(ctx: FsckContext, g: number): number {
  return Math.min(ctx.img.sb.blocksPerGroup, ctx.img.blocksCount - groupStart(ctx, g))
}

/** Do descriptors carry checksums that make the UNINIT flags and itable_unused meaningful? */
export function hasGroupCsum(ctx: FsckContext): boolean {
  return ctx.csum || hasFeature(ctx.img.sb, 'ro_compat', 'uninit_bg')
}

export async function checkSuperblock(ctx: FsckContext): Promise<void> {
  const { sb, blockSize: bs, blocksCount, groupCount } = ctx.img
  const r = ctx.report
  const raw = await ctx.img.readBlocks(0, Math.ceil((SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) / bs), 'superblock')
  ctx.verify(1, 'SUPERBLOCK_CSUM', 'superblock', raw.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE), { block: bs === 1024 ? 1 : 0 })
  if (sb.firstDataBlock !== (bs === 1024 ? 1 : 0)) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_first_data_block ${sb.firstDataBlock} with ${bs}-byte blocks`)
  if (sb.inodesCount !== groupCount * sb.inodesPerGroup) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_inodes_count ${sb.inodesCount}, ${groupCount} groups of ${sb.inodesPerGroup} make ${groupCount * sb.inodesPerGroup}`)
  if (sb.revLevel >= 1 && (sb.firstIno < 11 || sb.firstIno >= sb.inodesCount)) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_first_ino ${sb.firstIno}`)
  if (reservedBlocksCount(sb) > blocksCount / 2) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_r_blocks_count ${reservedBlocksCount(sb)} over half of ${blocksCount} blocks`)
  if (freeBlocksCount(sb) > blocksCount) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_free_blocks_count ${freeBlocksCount(sb)} over s_blocks_count ${blocksCount}`)
  if (sb.freeInodesCount > sb.inodesCount) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_free_inodes_count ${sb.freeInodesCount} over s_inodes_count ${sb.inodesCount}`)
  if (sb.logGroupsPerFlex > 31) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_log_groups_per_flex ${sb.logGroupsPerFlex}`)
  // Without bigalloc a cluster is a block (ext2fs_open2 refuses the superblock otherwise: "corrupt").
  if (!hasFeature(sb, 'ro_compat', 'bigalloc')) {
    if (sb.logClusterSize !== sb.logBlockSize) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_log_cluster_size ${sb.logClusterSize} without bigalloc (s_log_block_size ${sb.logBlockSize})`)
    if (sb.clustersPerGroup !== sb.blocksPerGroup) r.add(1, 'SUPERBLOCK_BAD_FIELD', `s_clusters_per_group ${sb.clustersPerGroup} without bigalloc (s_blocks_per_group ${sb.blocksPerGroup})`)
  }
}

/** Read, check and keep every descriptor; mark the layout's blocks in use. */
export async function checkGroupDescs(ctx: FsckContext): Promise<void> {
  const { sb, blockSize: bs, blocksCount, groupCount } = ctx.img
  const r = ctx.report
  const ds = descSize(sb)
  const table = gdtBlocks(ctx)
  const raw = await ctx.img.readBlocks(sb.firstDataBlock + 1, table, 'group descriptor table')
  const itableBlocks = Math.ceil((sb.inodesPerGroup * ctx.img.inodeSize) / bs)
  const flex = hasFeature(sb, 'incompat', 'flex_bg')
  const groupCsum = hasGroupCsum(ctx)
  for (let g = 0; g < groupCount; g++) {
    const bytes = raw.subarray(g * ds, (g + 1) * ds)
    const at = sb.firstDataBlock + 1 + Math.floor((g * ds) / bs)
    if (ctx.csum) ctx.verify(1, 'GROUP_DESC_CSUM', 'group-desc', bytes, { block: at, group: g })
    const gd = decodeGroupDesc(bytes, 0, ds)
    ctx.groups.push(gd)
    const start = groupStart(ctx, g)
    const end = start + groupBlocks(ctx, g)
    // Without flex_bg a group's bitmaps and table live inside it; with it, anywhere in the file system.
    const inside = (b: number, n: number): boolean => (flex ? b >= sb.firstDataBlock && b + n <= blocksCount : b >= start && b + n <= end)
    const place = (what: string, b: number, n: number): void => {
      if (!inside(b, n)) r.add(1, 'GROUP_DESC_BAD_LOCATION', `group ${g}: ${what} at block ${b}${n > 1 ? `+${n}` : ''} outside ${flex ? 'the file system' : `its group (${start}..${end - 1})`}`, { block: b })
      else ctx.claim(1, b, n, `group ${g} ${what}`)
    }
    place('block bitmap', gd.blockBitmap, 1)
    place('inode bitmap', gd.inodeBitmap, 1)
    place('inode table', gd.inodeTable, itableBlocks)
    if (gd.itableUnused > sb.inodesPerGroup) r.add(1, 'GROUP_DESC_BAD_COUNT', `group ${g}: bg_itable_unused ${gd.itableUnused} over ${sb.inodesPerGroup} inodes per group`)
    if (!groupCsum && (gd.flags & (BG_BLOCK_UNINIT | BG_INODE_UNINIT)) !== 0) r.add(1, 'GROUP_DESC_BAD_FLAGS', `group ${g}: UNINIT flags 0x${gd.flags.toString(16)} without group checksums`)
    if (g === groupCount - 1 && g > 0 && (gd.flags & BG_BLOCK_UNINIT) !== 0) r.add(1, 'GROUP_DESC_BAD_FLAGS', `group ${g}: the last group's block bitmap is marked uninitialised`)
    if (g === 0 && (gd.flags & BG_INODE_UNINIT) !== 0) r.add(1, 'GROUP_DESC_BAD_FLAGS', 'group 0: inode table marked uninitialised, but it holds the reserved inodes')
  }
  for (let g = 0; g < groupCount; g++) {
    if (!hasSuperBackup(ctx, g)) continue
    const start = groupStart(ctx, g)
    const n = Math.min(1 + table + sb.reservedGdtBlocks, groupBlocks(ctx, g))
    ctx.claim(1, start, n, `group ${g} superblock and descriptor table`)
  }
}
