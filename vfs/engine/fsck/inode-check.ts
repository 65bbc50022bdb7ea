/*
 * Pass 1 for one inode in use: its type, flags (inode-flags.ts), the blocks it claims (extent
 * tree, extended-attribute block), i_blocks against them, i_size against the
 * last block mapped, and the rules of its type (fast and slow symlinks,
 * device nodes, FIFOs and sockets hold no blocks and no size). Reserved
 * inodes below s_first_ino, except the root, only claim their blocks and
 * have i_blocks counted against them.
 */
import { hasFeature } from '../format/features.ts'
import {
  blocksIn512, fileType, I_BLOCK_SIZE, INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
} from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import { ROOT_INO } from '../reader/image.ts'
import type { FsckContext } from './context.ts'
import { walkExtents } from './extent-walk.ts'
import { checkResizeInode } from './resize-inode.ts'
import { EA_INODE_FL, eaInodeFacts, hasEaInodeFeature } from './ea-inode.ts'
import { checkCasefold, checkInodeFlags } from './inode-flags.ts'
import { claimXattrBlock, judgeXattrEaRefs } from './xattr-check.ts'
import { checkIbodyXattrs } from './xattr-ibody.ts'
import type { ExtentWalk } from './extent-walk.ts'

const TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK])
const RESIZE_INO = 7
const JOURNAL_INO = 8
/** EXT4_USR_QUOTA_INO and EXT4_GRP_QUOTA_INO: e2fsck treats them as quota inodes, used or not. */
const QUOTA_INOS = new Set([3, 4])
const BOOT_LOADER_INO = 5
const BAD_BLOCKS_INO = 1

/**
 * What e2fsck pass 1 asks of a reserved inode's mode: the boot loader may not be a directory, the
 * resize inode is regular or nothing, the journal (when it is one) regular; an inode 8 or 3/4 that
 * is not the journal or a quota file must be clear; the rest have no mode at all.
 */
function checkReservedMode(ctx: FsckContext, ino: number, inode: Inode): void {
  const sb = ctx.img.sb
  const r = ctx.report
  const fmt = fileType(inode.mode)
  const notClear = inode.linksCount !== 0 || inode.blocks !== 0 || inode.block.readUInt32LE(0) !== 0
  if (ino === JOURNAL_INO) {
    if (sb.journalInum === JOURNAL_INO) {
      if (fmt !== S_IFREG) r.add(1, 'JOURNAL_BAD_MODE', `journal inode ${ino}: mode 0${inode.mode.toString(8)} is not a regular file`, { ino })
    } else if (notClear) {
      r.add(1, 'JOURNAL_INODE_NOT_CLEAR', `inode ${ino} is not the journal (s_journal_inum ${sb.journalInum}) but holds data`, { ino })
    }
  } else if (QUOTA_INOS.has(ino)) {
    // With the quota feature mkfs puts the user and group quota files here (s_usr_quota_inum, s_grp_quota_inum).
    const isQuota = hasFeature(sb, 'ro_compat', 'quota')
    if (isQuota && fmt !== S_IFREG) r.add(1, 'QUOTA_BAD_MODE', `quota inode ${ino}: mode 0${inode.mode.toString(8)} is not a regular file`, { ino })
    else if (!isQuota && notClear) r.add(1, 'QUOTA_INODE_NOT_CLEAR', `inode ${ino} is no quota file but holds data`, { ino })
  } else if (ino === BOOT_LOADER_INO) {
    if (fmt === S_IFDIR) r.add(1, 'RESERVED_BAD_MODE', `reserved inode ${ino} (boot loader) is a directory`, { ino })
  } else if (ino === RESIZE_INO) {
    if (inode.mode !== 0 && fmt !== S_IFREG) r.add(1, 'RESERVED_BAD_MODE', `reserved inode ${ino} (resize) has mode 0${inode.mode.toString(8)}`, { ino })
  } else if (ino !== BAD_BLOCKS_INO && inode.mode !== 0) {
    r.add(1, 'RESERVED_BAD_MODE', `reserved inode ${ino} has mode 0${inode.mode.toString(8)}`, { ino })
  }
}

/** raw: the inode's record as stored (its in-body attributes, a value inode's count). */
export async function checkInode(ctx: FsckContext, ino: number, inode: Inode, raw?: Buffer): Promise<void> {
  const r = ctx.report
  const sb = ctx.img.sb
  const bs = ctx.img.blockSize
  const fmt = fileType(inode.mode)
  const where = { ino }
  ctx.linksCount[ino] = inode.linksCount
  // The root too (e2fsck's PR_1_ROOT_DTIME, then PR_1_SET_DTIME).
  if (!ctx.orphans.has(ino) && inode.dtime !== 0 && (ino >= sb.firstIno || (ino === ROOT_INO && inode.linksCount > 0))) {
    r.add(1, 'INODE_DTIME_SET', `inode ${ino}: in use (${inode.linksCount} links) but i_dtime is ${inode.dtime}`, where)
  }

  // e2fsck PR_1_LOW_DTIME: a dtime below the inode count is an orphan-list link left in an inode in use (for ino >= s_first_ino, INODE_DTIME_SET says more).
  // (The root with links has INODE_DTIME_SET, which the same repair answers.)
  if (ino < sb.firstIno && inode.dtime !== 0 && inode.dtime < sb.inodesCount && (inode.linksCount > 0 || ino === ROOT_INO) && !(ino === ROOT_INO && inode.linksCount > 0)) {
    r.add(1, 'INODE_LOW_DTIME', `inode ${ino}: i_dtime ${inode.dtime} looks like an orphan-list link (under ${sb.inodesCount})`, where)
  }
  if (ino < sb.firstIno && ino !== ROOT_INO) {
    // Reserved: the journal and others claim their blocks; the resize inode (block-mapped) its DIND block.
    ctx.types[ino] = fmt >> 12
    checkReservedMode(ctx, ino, inode)
    checkCasefold(ctx, ino, inode)
    if (ino === RESIZE_INO) {
      await checkResizeInode(ctx, inode)
      return
    }
    // e2fsck runs check_blocks on every reserved inode: i_blocks must match what it maps (the journal's
    // and a quota file's extents, nothing for the others); its size and map are the journal check's.
    // An extended attribute block or a block map we do not walk leaves the count unjudged.
    let counted: number | undefined
    if ((inode.flags & INODE_FLAGS.EXTENTS) !== 0) {
      const walk = await walkExtents(ctx, ino, inode, false)
      if (walk.ok) counted = walk.blocks
    } else if (inode.block.equals(Buffer.alloc(I_BLOCK_SIZE))) {
      counted = 0
    }
    // Its extended attribute block is claimed, counted against h_refcount and judged like any
    // other's (e2fsck's check_blocks runs check_ext_attr for every reserved inode it checks).
    const acl = await claimAcl(ctx, ino, inode, false)
    if (counted !== undefined && acl !== undefined) {
      counted += acl
      const want = counted * (bs / 512)
      const have = blocksIn512(inode, bs)
      if (have !== want) r.add(1, 'INODE_BAD_I_BLOCKS', `inode ${ino}: i_blocks ${have}, counted ${want}`, { ...where, expected: want })
    }
    return
  }
  if (!TYPES.has(fmt)) {
    r.add(1, 'INODE_BAD_MODE', `inode ${ino}: mode 0${inode.mode.toString(8)} is no file type`, where)
    return
  }
  ctx.types[ino] = fmt >> 12
  if (ino === ROOT_INO && fmt !== S_IFDIR) r.add(1, 'ROOT_NOT_DIR', `the root inode has mode 0${inode.mode.toString(8)}, not a directory`, where)
  if ((inode.flags & INODE_FLAGS.INLINE_DATA) !== 0) r.add(1, 'INODE_BAD_FLAGS', `inode ${ino}: INLINE_DATA_FL without the inline_data feature`, where)
  if ((inode.flags & INODE_FLAGS.EXTENTS) !== 0 && !hasFeature(sb, 'incompat', 'extent')) r.add(1, 'INODE_BAD_FLAGS', `inode ${ino}: EXTENTS_FL without the extent feature`, where)
  const flags = await checkInodeFlags(ctx, ino, inode, raw)
  if (flags !== inode.flags) inode = { ...inode, flags }

  if ((inode.flags & EA_INODE_FL) !== 0 && raw !== undefined) ctx.eaInodes.set(ino, eaInodeFacts(raw))
  // Value inodes named from the inode body or the attribute block charge their blocks to it (quota).
  const ibody = raw === undefined ? 0 : await checkIbodyXattrs(ctx, ino, inode, raw)
  const acl = await claimAcl(ctx, ino, inode, true)
  let blocks = (ibody ?? 0) + (acl ?? 0)

  if (fmt === S_IFCHR || fmt === S_IFBLK || fmt === S_IFIFO || fmt === S_IFSOCK) {
    checkSpecial(ctx, ino, inode)
  } else if (fmt === S_IFLNK && (inode.flags & INODE_FLAGS.EXTENTS) === 0) {
    checkFastSymlink(ctx, ino, inode)
  } else if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) {
    // Block-mapped (ext2/3 style) data is not walked yet: say so instead of judging its blocks.
    if (!inode.block.equals(Buffer.alloc(I_BLOCK_SIZE))) r.note(1, 'INODE_BLOCK_MAPPED', `inode ${ino}: block-mapped data is not checked (only extents are)`, where)
    return
  } else {
    const walk = await walkExtents(ctx, ino, inode, fmt === S_IFDIR || fmt === S_IFLNK)
    if (!walk.ok) return
    blocks += walk.blocks
    if (fmt === S_IFDIR) checkDirSize(ctx, ino, inode, walk)
    else if (fmt === S_IFLNK) await checkSlowSymlink(ctx, ino, inode, walk)
    else if (walk.lastInitBlock >= 0 && inode.size < walk.lastInitBlock * bs) {
      r.add(1, 'INODE_BAD_SIZE', `inode ${ino}: i_size ${inode.size} ends before logical block ${walk.lastInitBlock}, which is mapped`, { ...where, expected: (walk.lastBlock + 1) * bs })
    } else if (inode.size > bs * 2 ** 32 - 1) {
      // An extent's ee_block is 32 bits: no byte past 2^32 blocks can be mapped (e2fsck pass 1, "bad_size = 6").
      r.add(1, 'INODE_BAD_SIZE', `inode ${ino}: i_size ${inode.size} beyond the ${bs * 2 ** 32 - 1} bytes 32-bit extent block numbers reach`, { ...where, expected: (walk.lastBlock + 1) * bs })
    }
  }
  // Attributes in the inode that cannot stand are cleared first; what they charged is not known till then.
  if (ibody === undefined) return
  const want = blocks * (bs / 512)
  const have = blocksIn512(inode, bs)
  if (have !== want) r.add(1, 'INODE_BAD_I_BLOCKS', `inode ${ino}: i_blocks ${have}, counted ${want}`, { ...where, expected: want })
}

/**
 * Inode ino's extended attribute block (i_file_acl), if any: claimed (one block may be shared by
 * inodes with identical attributes, h_refcount: claimed once, counted per user), with ea_inode its
 * value inodes judged at the first claim. The blocks it charges ino (itself and the values of its
 * value inodes); undefined when it lies outside the file system (reported when outsideIsBad: e2fsck
 * marks such an inode bad, which pass 2 reports only for an inode a directory names).
 */
async function claimAcl(ctx: FsckContext, ino: number, inode: Inode, outsideIsBad: boolean): Promise<number | undefined> {
  const block = inode.fileAcl
  if (block === 0) return 0
  if (block < ctx.img.sb.firstDataBlock || block >= ctx.img.blocksCount) {
    if (outsideIsBad) ctx.report.add(1, 'XATTR_BAD_BLOCK', `inode ${ino}: extended attribute block ${block} outside the file system`, { ino, block })
    return outsideIsBad ? 0 : undefined
  }
  const first = claimXattrBlock(ctx, ino, block)
  if (first !== undefined && hasEaInodeFeature(ctx)) await judgeXattrEaRefs(ctx, ino, inode.generation, block, first)
  return 1 + (ctx.xattr.get(block)?.quota ?? 0)
}

function checkSpecial(ctx: FsckContext, ino: number, inode: Inode): void {
  const r = ctx.report
  if ((inode.flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INDEX)) !== 0) r.add(1, 'INODE_BAD_FLAGS', `inode ${ino}: a device, FIFO or socket with flags 0x${inode.flags.toString(16)}`, { ino })
  // The device number lives in i_block[0] (old) or i_block[1] (new); the rest must be zero (e2fsck check_device_inode).
  for (let slot = 4; slot < I_BLOCK_SIZE / 4; slot++) {
    if (inode.block.readUInt32LE(slot * 4) !== 0) {
      r.add(1, 'INODE_BAD_DEVICE', `inode ${ino}: i_block[${slot}] of a device, FIFO or socket is not zero`, { ino })
      break
    }
  }
  if (inode.size !== 0) r.add(1, 'INODE_BAD_SIZE', `inode ${ino}: a device, FIFO or socket of size ${inode.size}`, { ino, expected: 0 })
}

function checkFastSymlink(ctx: FsckContext, ino: number, inode: Inode): void {
  const r = ctx.report
  if (inode.size >= I_BLOCK_SIZE) {
    r.add(1, 'SYMLINK_BAD', `inode ${ino}: fast symlink of size ${inode.size} (at most ${I_BLOCK_SIZE - 1})`, { ino })
    return
  }
  const nul = inode.block.indexOf(0)
  const len = nul < 0 ? I_BLOCK_SIZE : nul
  if (len !== inode.size) r.add(1, 'SYMLINK_BAD', `inode ${ino}: fast symlink target is ${len} bytes, i_size ${inode.size}`, { ino })
}

async function checkSlowSymlink(ctx: FsckContext, ino: number, inode: Inode, walk: ExtentWalk): Promise<void> {
  const r = ctx.report
  const bs = ctx.img.blockSize
  const first = walk.extents[0]
  if (inode.size === 0 || inode.size >= bs || walk.lastBlock !== 0 || first === undefined || first[0] !== 0) {
    r.add(1, 'SYMLINK_BAD', `inode ${ino}: slow symlink of size ${inode.size} mapping logical blocks up to ${walk.lastBlock} (one block, size under ${bs})`, { ino })
    return
  }
  const data = await ctx.img.readBlocks(first[1], 1, `symlink ${ino}`)
  const nul = data.indexOf(0)
  const len = nul < 0 ? bs : nul
  if (len !== inode.size) r.add(1, 'SYMLINK_BAD', `inode ${ino}: slow symlink target is ${len} bytes, i_size ${inode.size}`, { ino, block: first[1] })
}

function checkDirSize(ctx: FsckContext, ino: number, inode: Inode, walk: ExtentWalk): void {
  const bs = ctx.img.blockSize
  const r = ctx.report
  if (inode.size % bs !== 0 || inode.size !== (walk.lastBlock + 1) * bs) {
    const expected = walk.lastBlock >= 0 ? { expected: (walk.lastBlock + 1) * bs } : {}
    r.add(1, 'DIR_BAD_SIZE', `directory ${ino}: i_size ${inode.size}, its blocks end at ${(walk.lastBlock + 1) * bs}`, { ino, ...expected })
  }
  if (walk.lastBlock < 0) r.add(1, 'DIR_NO_BLOCKS', `directory ${ino} has no blocks`, { ino })
  ctx.dirs.set(ino, { generation: inode.generation, flags: inode.flags, size: inode.size, extents: walk.extents, dotdot: 0, parent: 0 })
}
