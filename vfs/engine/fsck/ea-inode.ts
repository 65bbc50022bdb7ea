/*
 * Values in their own inode (INCOMPAT_EA_INODE, ext4 attributes.rst "large
 * extended attribute values"): an entry's e_value_inum names a regular inode
 * with EXT4_EA_INODE_FL whose data is the value. The kernel keeps in that
 * inode the value's crc32c in i_atime and the number of entries naming it
 * (one per inode body or attribute block, however many share the block) in
 * i_ctime (high 32 bits) and the low i_version (ext4 xattr.c
 * ext4_xattr_inode_get_hash, ext4_xattr_inode_get_ref). The entry's e_hash
 * mixes the name's hash with that crc32c, and the owner's i_blocks counts the
 * value's blocks (quota charges them to the owner).
 *
 * As e2fsck 1.47's check_large_ea_inode, per entry: the value inode must lie
 * in s_first_ino..s_inodes_count; e_hash must match its i_atime (an old
 * Lustre value inode instead carries its owner in i_mtime and i_generation,
 * and charges nothing); a value inode whose hash matches but that lacks
 * EA_INODE_FL is given the flag. Pass 4 (pass4-links.ts) then counts: a value
 * inode no directory names is attached by its entries, and its stored count
 * must be theirs ("Extended attribute inode %i ref count is %N, should be %n").
 * We also require e_value_size to be the value inode's i_size, as the kernel
 * does before it reads a value (ext4_xattr_inode_get, -EFSCORRUPTED) and
 * e2fsprogs after 1.47.3 does ("has a value size (%N) which is invalid").
 */
import { hasFeature } from '../format/features.ts'
import type { FsckContext } from './context.ts'
import { eaInodeEntryHashes } from './xattr-entries.ts'
import type { EaInodeRef } from './xattr-entries.ts'

/** EXT4_EA_INODE_FL: the inode holds one extended attribute value. */
export const EA_INODE_FL = 0x200000
const I_ATIME = 0x8
const I_CTIME = 0xc
const I_MTIME = 0x10
const I_FLAGS = 0x20
const I_VERSION_LO = 0x24
const I_SIZE_LO = 0x4
const I_SIZE_HI = 0x6c
const I_GENERATION = 0x64

/** What pass 1 kept of an inode with EA_INODE_FL, for pass 4. */
export interface EaInodeFacts {
  /** The stored reference count, i_ctime (high word) and i_version's low word. */
  refHi: number
  refLo: number
  /** i_ctime equals i_atime: an old Lustre value inode, which keeps no count (e2fsck skips it). */
  lustre: boolean
}

export function eaInodeFacts(raw: Buffer): EaInodeFacts {
  return { refHi: raw.readUInt32LE(I_CTIME), refLo: raw.readUInt32LE(I_VERSION_LO), lustre: raw.readUInt32LE(I_CTIME) === raw.readUInt32LE(I_ATIME) }
}

/** Does the stored count equal n? */
export function storedRefIs(f: EaInodeFacts, n: number): boolean {
  return f.refHi === Math.floor(n / 2 ** 32) && f.refLo === n % 2 ** 32
}

export function storedRef(f: EaInodeFacts): number {
  return f.refHi * 2 ** 32 + f.refLo
}

export function hasEaInodeFeature(ctx: FsckContext): boolean {
  return hasFeature(ctx.img.sb, 'incompat', 'ea_inode')
}

/** Inode ino's record as stored (undefined: its group's table is outside the file system). */
async function readRawInode(ctx: FsckContext, ino: number): Promise<Buffer | undefined> {
  const { sb, blockSize: bs, inodeSize: isz } = ctx.img
  const gd = ctx.groups[Math.floor((ino - 1) / sb.inodesPerGroup)]
  if (gd === undefined) return undefined
  const byte = gd.inodeTable * bs + ((ino - 1) % sb.inodesPerGroup) * isz
  const block = Math.floor(byte / bs)
  if (gd.inodeTable < sb.firstDataBlock || block >= ctx.img.blocksCount) return undefined
  const buf = await ctx.img.readBlocks(block, 1, `inode ${ino}`)
  return buf.subarray(byte - block * bs, byte - block * bs + isz)
}

/** One more entry names value inode inum. */
export function countEaRef(ctx: FsckContext, inum: number): void {
  ctx.eaRefs.set(inum, (ctx.eaRefs.get(inum) ?? 0) + 1)
}

export interface EaRefVerdict {
  /** Why the entry cannot stand (undefined: it can): its holder loses it (e2fsck "Clear"). */
  fault: string | undefined
  /** The value inode matches but lacks EA_INODE_FL: e2fsck sets it. */
  noFlag: boolean
  /** File system blocks the value charges to the entry's owner. */
  quota: number
}

/**
 * Judge the entry ref in buf (an inode body or an attribute block) of owner (its inode number and
 * i_generation, for the Lustre form), and count it against its value inode.
 */
export async function judgeEaRef(ctx: FsckContext, owner: { ino: number; generation: number }, buf: Buffer, ref: EaInodeRef): Promise<EaRefVerdict> {
  const sb = ctx.img.sb
  const none = { noFlag: false, quota: 0 }
  countEaRef(ctx, ref.inum)
  if (ref.inum < sb.firstIno || ref.inum > sb.inodesCount) return { fault: `names value inode ${ref.inum}, outside ${sb.firstIno}..${sb.inodesCount}`, ...none }
  const raw = await readRawInode(ctx, ref.inum)
  if (raw === undefined) return { fault: `names value inode ${ref.inum}, whose inode table is outside the file system`, ...none }
  const size = raw.readUInt32LE(I_SIZE_LO) + raw.readUInt32LE(I_SIZE_HI) * 2 ** 32
  if (ref.size === 0 || ref.size !== size) return { fault: `e_value_size ${ref.size}, value inode ${ref.inum} holds ${size} bytes`, ...none }
  const flags = raw.readUInt32LE(I_FLAGS)
  const valueHash = raw.readUInt32LE(I_ATIME)
  const [unsigned, signed] = eaInodeEntryHashes(buf, ref.off, valueHash)
  let quota = 0
  if (ref.hash === unsigned || ref.hash === signed) {
    quota = Math.ceil(ref.size / ctx.img.blockSize)
  } else if (raw.readUInt32LE(I_MTIME) !== owner.ino || raw.readUInt32LE(I_GENERATION) !== owner.generation) {
    if ((flags & EA_INODE_FL) === 0) return { fault: `names inode ${ref.inum}, which is no extended attribute inode (no EA_INODE_FL, and e_hash does not match it)`, ...none }
    return { fault: `e_hash 0x${ref.hash.toString(16)} is not the hash of its name and value inode ${ref.inum} (0x${unsigned.toString(16)})`, ...none }
  }
  return { fault: undefined, noFlag: (flags & EA_INODE_FL) === 0, quota }
}

/** Report a value inode found without EA_INODE_FL (once per value inode). */
export function reportNoFlag(ctx: FsckContext, owner: number, inum: number): void {
  if (ctx.report.problems.some((p) => p.code === 'EA_INODE_NO_FLAG' && p.ino === inum)) return
  ctx.report.add(1, 'EA_INODE_NO_FLAG', `inode ${inum} holds an extended attribute value of inode ${owner} but lacks EA_INODE_FL`, { ino: inum })
}
