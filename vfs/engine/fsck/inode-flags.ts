/*
 * Pass 1, the flags of an inode in use that e2fsck judges on their own
 * (e2fsck pass1.c and encrypted_files.c; every one is "Clear? yes" or "Fix?
 * yes" of one flag, never of the inode):
 *   - IMAGIC_FL without the imagic_inodes feature (PR_1_SET_IMAGIC);
 *   - CASEFOLD_FL on anything but a directory, or without the casefold
 *     feature (PR_1_CASEFOLD_NONDIR, PR_1_CASEFOLD_FEATURE), on every inode
 *     scanned, reserved ones too;
 *   - ENCRYPT_FL on an inode with no encryption context, the attribute "c" of
 *     name index 9, readable in its body or its attribute block
 *     (PR_1_MISSING_ENCRYPTION_XATTR); a context there that is clearly not
 *     one (PR_1_CORRUPT_ENCRYPTION_XATTR) is e2fsck's "Clear inode", which we
 *     report and leave;
 *   - IMMUTABLE_FL or APPEND_FL on a device, FIFO, socket or symlink
 *     (PR_1_SET_IMMUTABLE), a note: e2fsck -n calls the image clean;
 *   - INDEX_FL on a non-directory, or without dir_index (PR_1_HTREE_NODIR,
 *     PR_1_HTREE_SET);
 *   - a regular file or directory without EXTENTS_FL whose i_block holds a
 *     sound extent root on an extent file system (PR_1_UNSET_EXTENT_FL: the
 *     flag is set, not cleared);
 * and beside them the one obsolete field e2fsck still asks to be zero on a
 * Linux file system, i_faddr (pass 2's PR_2_FADDR_ZERO: "i_faddr ... should be
 * zero. Clear? yes").
 * FLAG_FIXES says what the repair does for each code (notes included).
 */
import { hasFeature } from '../format/features.ts'
import { EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE, EXTENT_MAGIC } from '../format/extent.ts'
import { fileType, I_BLOCK_SIZE, INODE_FLAGS, S_IFDIR, S_IFLNK, S_IFREG } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { FsckContext } from './context.ts'
import { findEntry, XATTR_HEADER_SIZE, XATTR_MAGIC } from './xattr-entries.ts'
import { ibodyStart } from './xattr-ibody.ts'

const IMMUTABLE_FL = 0x10
const APPEND_FL = 0x20
const IMAGIC_FL = 0x2000
/** EXT4_XATTR_INDEX_ENCRYPTION and the one name stored under it (fscrypt's context). */
const ENCRYPTION_INDEX = 9
const ENCRYPTION_NAME = 'c'
/** fscrypt context versions and their sizes: v1 28 bytes, v2 40 (fscrypt_private.h). */
const CONTEXT_SIZES = new Map([[1, 28], [2, 40]])

/** What the repair does to i_flags for each code pass 1 reports here. */
export const FLAG_FIXES: ReadonlyMap<string, { clear: number; set: number; faddr?: true }> = new Map<string, { clear: number; set: number; faddr?: true }>([
  ['INODE_IMAGIC_FL', { clear: IMAGIC_FL, set: 0 }],
  ['INODE_CASEFOLD_FL', { clear: INODE_FLAGS.CASEFOLD, set: 0 }],
  ['INODE_ENCRYPT_NO_XATTR', { clear: INODE_FLAGS.ENCRYPT, set: 0 }],
  ['INODE_SPECIAL_IMMUTABLE', { clear: IMMUTABLE_FL | APPEND_FL, set: 0 }],
  ['INODE_HTREE_FL', { clear: INODE_FLAGS.INDEX, set: 0 }],
  ['INODE_MISSING_EXTENTS_FL', { clear: 0, set: INODE_FLAGS.EXTENTS }],
  ['INODE_FADDR', { clear: 0, set: 0, faddr: true }],
])

/** i_faddr: the obsolete fragment address, 32 bits at 0x70 (inodes.rst). */
export const I_FADDR_OFFSET = 0x70
/** i_flags, 32 bits at 0x20. */
export const I_FLAGS_OFFSET = 0x20

/** CASEFOLD_FL where it cannot be: asked of every inode pass 1 scans, reserved or not. */
export function checkCasefold(ctx: FsckContext, ino: number, inode: Inode): void {
  if ((inode.flags & INODE_FLAGS.CASEFOLD) === 0) return
  const dir = fileType(inode.mode) === S_IFDIR
  if (dir && hasFeature(ctx.img.sb, 'incompat', 'casefold')) return
  ctx.report.add(1, 'INODE_CASEFOLD_FL', `inode ${ino}: casefold flag ${dir ? 'without the casefold feature' : 'on a non-directory'}`, { ino })
}

/** ext2fs_extent_header_verify over i_block: magic, entries within max, max what 60 bytes hold (or up to two fewer). */
function soundExtentRoot(block: Buffer): boolean {
  if (block.readUInt16LE(0) !== EXTENT_MAGIC) return false
  const entries = block.readUInt16LE(2)
  const max = block.readUInt16LE(4)
  const fits = Math.floor((I_BLOCK_SIZE - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE)
  return entries <= max && max <= fits && max >= fits - 2
}

/**
 * The encryption context of an inode (body first, then its attribute block, as ext2fs_xattrs_read
 * reads them); undefined when there is none or either place cannot be read, which e2fsck takes
 * for none.
 */
async function encryptionContext(ctx: FsckContext, inode: Inode, raw: Buffer): Promise<Buffer | undefined> {
  let found: Buffer | undefined
  const header = ibodyStart(raw.length, inode.extraIsize)
  if (header !== undefined && raw.readUInt32LE(header) === XATTR_MAGIC) {
    const v = findEntry(raw, header + 4, raw.length, header + 4, ENCRYPTION_INDEX, ENCRYPTION_NAME)
    if (v === null) return undefined
    found = v
  }
  const blk = inode.fileAcl
  if (blk !== 0) {
    if (blk < ctx.img.sb.firstDataBlock || blk >= ctx.img.blocksCount) return undefined
    const buf = await ctx.img.readBlocks(blk, 1, `inode extended attribute block ${blk}`)
    if (buf.readUInt32LE(0) !== XATTR_MAGIC) return undefined
    const v = findEntry(buf, XATTR_HEADER_SIZE, buf.length, 0, ENCRYPTION_INDEX, ENCRYPTION_NAME)
    if (v === null) return undefined
    found ??= v
  }
  return found
}

/**
 * The flags of inode ino (the root or an ordinary inode in use; raw: its record). Returns the
 * flags the rest of pass 1 goes on with: EXTENTS_FL added where the repair will add it, so its
 * blocks are counted as its own meanwhile and no later step frees them.
 */
export async function checkInodeFlags(ctx: FsckContext, ino: number, inode: Inode, raw: Buffer | undefined): Promise<number> {
  const r = ctx.report
  const sb = ctx.img.sb
  const fmt = fileType(inode.mode)
  const where = { ino }
  let flags = inode.flags
  checkCasefold(ctx, ino, inode)
  if ((flags & IMAGIC_FL) !== 0 && !hasFeature(sb, 'compat', 'imagic_inodes')) r.add(1, 'INODE_IMAGIC_FL', `inode ${ino}: imagic flag without the imagic_inodes feature`, where)
  const special = fmt !== S_IFREG && fmt !== S_IFDIR
  // e2fsck -n lets this one pass (PR_NO_OK: answered "no", the file system is still valid), -y clears it: a note the repair answers.
  if (special && (flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) r.note(1, 'INODE_SPECIAL_IMMUTABLE', `inode ${ino}: a device, FIFO, socket or symlink with the immutable or append-only flag`, where)
  if ((flags & INODE_FLAGS.INDEX) !== 0 && (fmt === S_IFREG || fmt === S_IFLNK)) r.add(1, 'INODE_HTREE_FL', `inode ${ino}: htree index flag on a non-directory`, where)
  if ((flags & INODE_FLAGS.INDEX) !== 0 && fmt === S_IFDIR && !hasFeature(sb, 'compat', 'dir_index')) r.add(1, 'INODE_HTREE_FL', `directory ${ino}: htree index flag without the dir_index feature`, where)
  if ((flags & INODE_FLAGS.EXTENTS) === 0 && (fmt === S_IFREG || fmt === S_IFDIR) && hasFeature(sb, 'incompat', 'extent') && soundExtentRoot(inode.block)) {
    r.add(1, 'INODE_MISSING_EXTENTS_FL', `inode ${ino}: no extents flag, but i_block holds an extent tree`, where)
    flags |= INODE_FLAGS.EXTENTS
  }
  const faddr = raw?.readUInt32LE(I_FADDR_OFFSET) ?? 0
  if (faddr !== 0) r.add(2, 'INODE_FADDR', `inode ${ino}: i_faddr is ${faddr}, should be zero`, where)
  if ((flags & INODE_FLAGS.ENCRYPT) !== 0 && raw !== undefined) {
    const context = await encryptionContext(ctx, inode, raw)
    const version = context?.[0]
    if (context === undefined) r.add(1, 'INODE_ENCRYPT_NO_XATTR', `inode ${ino}: encrypt flag but no encryption context attribute`, where)
    else if (version === undefined || version === 0 || (CONTEXT_SIZES.has(version) && CONTEXT_SIZES.get(version) !== context.length)) {
      r.add(1, 'INODE_ENCRYPT_BAD_XATTR', `inode ${ino}: encryption context of ${context.length} bytes, version ${version ?? 'none'}, is corrupt`, where)
    } else {
      // Sound: then pass 2 owes its directory's entries e2fsck's policy checks, which we do not make.
      r.note(1, 'INODE_ENCRYPTED', `inode ${ino}: encrypted (fscrypt policies of directory entries are not checked)`, where)
    }
  }
  return flags
}
