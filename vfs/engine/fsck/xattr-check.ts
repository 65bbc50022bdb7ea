/*
 * Pass 1, extended attribute blocks (i_file_acl). One block may be shared by
 * every inode whose attributes are identical; its header's h_refcount says
 * by how many (the kernel's mbcache shares them, ext4 xattr.c). As e2fsck's
 * check_ext_attr: the block is claimed the first time an inode names it and
 * each later inode naming it only counts; after the inode scan each block is
 * judged once (magic, h_blocks, entries, checksum) and its count of users
 * compared with its h_refcount ("Extended attribute block %b has reference count %r,
 * should be %N."). A block that is no sound extended attribute block
 * (xattr-entries.ts) is reported, and its h_refcount never judged.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { csumSeed } from '../reader/csum-verifier.ts'
import type { Superblock } from '../format/superblock.ts'
import type { FsckContext } from './context.ts'
import { countEaRef, hasEaInodeFeature, judgeEaRef, reportNoFlag } from './ea-inode.ts'
import { eaInodeRefs, XATTR_HEADER_SIZE, xattrBlockFault } from './xattr-entries.ts'

export const XATTR_REFCOUNT_OFFSET = 0x4
export const XATTR_CHECKSUM_OFFSET = 0x10

/** Users remembered at most over all blocks (the clone repair repoints them); the counts are always exact. */
export const MAX_XATTR_USERS = 1 << 18

/** What pass 1 learnt of one extended attribute block. */
export interface XattrUse {
  /** The first inode found naming it (problems name it). */
  first: number
  /** h_refcount as read; undefined when the block is no sound extended attribute block (xattr-entries.ts). */
  stated: number | undefined
  /** Inodes in use that name it. */
  count: number
  /** Those inodes, in scan order; undefined once MAX_XATTR_USERS was reached. */
  users: number[] | undefined
  /** Blocks its entries' value inodes charge to each inode naming it (ea_inode), judged at the first claim. */
  quota: number
}

/**
 * The block's checksum (metadata_csum): crc32c from the fs seed over the le64
 * block number, then the block with h_checksum as zero. The block number, not
 * an inode, is in the sum because the block is shared (ext4 checksums.rst;
 * ext2fs_ext_attr_block_csum). Hence a copy at another block needs its own sum.
 */
export function xattrBlockCsum(sb: Superblock, block: number, buf: Buffer): number {
  const le = Buffer.alloc(8)
  le.writeBigUInt64LE(BigInt(block))
  let c = crc32cUpdate(csumSeed(sb), le)
  c = crc32cUpdate(c, buf.subarray(0, XATTR_CHECKSUM_OFFSET))
  c = crc32cUpdate(c, Buffer.alloc(4))
  return crc32cUpdate(c, buf.subarray(XATTR_CHECKSUM_OFFSET + 4))
}

/** Store buf's checksum for block (no-op without metadata_csum). */
export function setXattrCsum(ctx: FsckContext, block: number, buf: Buffer): void {
  if (ctx.csum) buf.writeUInt32LE(xattrBlockCsum(ctx.img.sb, block, buf), XATTR_CHECKSUM_OFFSET)
}

/**
 * Inode ino names block (inside the file system) as its extended attribute block: claimed the
 * first time (so a block claimed before is multiply claimed in inode order, as pass 1 finds it),
 * counted every time. Its contents are judged after the scan (checkXattrBlocks).
 */
export function claimXattrBlock(ctx: FsckContext, ino: number, block: number): XattrUse | undefined {
  const seen = ctx.xattr.get(block)
  if (seen !== undefined) {
    seen.count++
    if (seen.users !== undefined) {
      if (ctx.xattrUsers < MAX_XATTR_USERS) {
        seen.users.push(ino)
        ctx.xattrUsers++
      } else {
        seen.users = undefined
      }
    }
    return undefined
  }
  const use: XattrUse = { first: ino, stated: undefined, count: 1, quota: 0, users: ctx.xattrUsers < MAX_XATTR_USERS ? [ino] : undefined }
  if (use.users !== undefined) ctx.xattrUsers++
  ctx.xattr.set(block, use)
  ctx.claim(1, block, 1, `inode ${ino} extended attribute block`, ino)
  return use
}

/**
 * The first claim of block by ino (generation: its i_generation), on a file system with ea_inode:
 * its entries naming value inodes judged and counted once for the block (as e2fsck counts a shared
 * block once), and the blocks they charge each sharer kept. A fault costs the block its users,
 * as any bad block does (XATTR_BAD_BLOCK); the block's own structure is judged after the scan.
 */
export async function judgeXattrEaRefs(ctx: FsckContext, ino: number, generation: number, block: number, use: XattrUse): Promise<void> {
  const buf = await ctx.img.readBlocks(block, 1, `extended attribute block ${block}`)
  if (xattrBlockFault(buf, true) !== undefined) return
  let faulted = false
  for (const ref of eaInodeRefs(buf, XATTR_HEADER_SIZE)) {
    // After a fault the rest are only counted (e2fsck -n counts every entry of a block it keeps).
    if (faulted) {
      countEaRef(ctx, ref.inum)
      continue
    }
    const v = await judgeEaRef(ctx, { ino, generation }, buf, ref)
    if (v.fault !== undefined) {
      ctx.report.add(1, 'XATTR_BAD_BLOCK', `inode ${ino} has a bad extended attribute block ${block}: entry at ${ref.off} ${v.fault}`, { ino, block })
      faulted = true
      continue
    }
    if (v.noFlag) reportNoFlag(ctx, ino, ref.inum)
    use.quota += v.quota
  }
}

/** Blocks read at once when judging: attribute blocks the kernel allocated together lie together. */
const READ_RUN = 256

function judge(ctx: FsckContext, block: number, use: XattrUse, buf: Buffer): void {
  const ino = use.first
  const fault = xattrBlockFault(buf, hasEaInodeFeature(ctx))
  if (fault !== undefined) {
    ctx.report.add(1, 'XATTR_BAD_BLOCK', `inode ${ino} has a bad extended attribute block ${block}: ${fault}`, { ino, block })
    return
  }
  use.stated = buf.readUInt32LE(XATTR_REFCOUNT_OFFSET)
  if (ctx.csum) {
    const want = xattrBlockCsum(ctx.img.sb, block, buf)
    const have = buf.readUInt32LE(XATTR_CHECKSUM_OFFSET)
    if (want !== have) ctx.report.add(1, 'XATTR_CSUM', `inode ${ino}: extended attribute block ${block} checksum 0x${have.toString(16)}, computed 0x${want.toString(16)}`, { ino, block })
  }
  if (use.stated !== use.count) {
    ctx.report.add(1, 'XATTR_REFCOUNT', `extended attribute block ${block} has reference count ${use.stated}, should be ${use.count}`, { block, expected: use.count })
  }
}

/**
 * After the inode scan: each extended attribute block judged (xattr-entries.ts, its checksum) and
 * its users counted against h_refcount. Read in block order, neighbours in one read: one read
 * per block cost a 20,000-attribute image several times the rest of the check.
 */
export async function checkXattrBlocks(ctx: FsckContext): Promise<void> {
  const bs = ctx.img.blockSize
  const blocks = [...ctx.xattr.keys()].sort((a, b) => a - b)
  for (let i = 0; i < blocks.length;) {
    const first = blocks[i] ?? 0
    let j = i + 1
    while (j < blocks.length && blocks[j] === first + (j - i) && j - i < READ_RUN) j++
    const raw = await ctx.img.readBlocks(first, j - i, `extended attribute blocks ${first}+${j - i}`)
    for (let k = i; k < j; k++) {
      const use = ctx.xattr.get(first + (k - i))
      if (use !== undefined) judge(ctx, first + (k - i), use, raw.subarray((k - i) * bs, (k - i + 1) * bs))
    }
    i = j
  }
}
