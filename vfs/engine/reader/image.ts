/*
 * A read-only walker over an ext4 image: open (every count checked against
 * the image size before anything is allocated from it), inodes by number,
 * file data through the extent tree, directories, path lookup, symlinks.
 * It trusts no number it reads: each one is checked before it is used as an
 * offset, a length or a loop bound, and a bad one becomes a FormatError
 * naming where it was found.
 */
import { VfsError } from '../../errors.ts'
import { corrupt, FormatError } from '../format/errors.ts'
import { hasFeature, unreadableFeatures } from '../format/features.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, decodeGroupDesc } from '../format/group-desc.ts'
import type { GroupDesc } from '../format/group-desc.ts'
import { decodeInode, I_BLOCK_SIZE, INODE_FLAGS, isDir, isSymlink } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import { decodeExtentNode } from '../format/extent.ts'
import type { Extent, ExtentNode } from '../format/extent.ts'
import { parseDirBlock, recLenFromDisk } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'
import {
  blocksCount, blockSize, decodeSuperblock, descSize, EXT4_SUPER_MAGIC, groupCount, inodeSize, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
} from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import type { ReadAt } from './read-at.ts'
import { hasMetadataCsum, metadataCsumVerifier } from './csum-verifier.ts'
import { NO_VERIFY } from './verify.ts'
import type { Verifier } from './verify.ts'
import { htreeFind } from './htree-lookup.ts'
import type { DxDir } from './htree-lookup.ts'

export const ROOT_INO = 2
/** The largest readFile we serve in one call: callers stream bigger files in pieces. */
export const MAX_READ = 64 * 1024 * 1024
/** Symlink targets longer than this are refused (PATH_MAX; the kernel stops at one block). */
export const MAX_SYMLINK = 4096
/** Symlinks followed in one lookup before ELOOP (the kernel's MAXSYMLINKS). */
const MAX_SYMLINK_FOLLOWS = 40
/** Blocks read at once when a directory's blocks are physically contiguous. */
const DIR_READ_RUN = 64
/** Decoded extent tree nodes kept (a sequential read revisits the same leaf for each extent). */
const EXTENT_NODE_CACHE = 64
/** i_generation, which the inode's checksum chains after its number. */
const I_GENERATION_OFFSET = 0x64

export interface OpenOptions {
  /**
   * Metadata checksum verification. The default checks every structure of an
   * image with metadata_csum (csum-verifier.ts) and nothing otherwise;
   * NO_VERIFY reads a damaged image as far as its structure allows.
   */
  verifier?: Verifier
}

/** Where a logical block lives: an extent holding it, or a hole up to holeEnd (exclusive, may be Infinity). */
export type BlockMapping = { extent: Extent; holeEnd?: undefined } | { extent?: undefined; holeEnd: number }

export interface ImageEntry extends DirEntry {
  /** The name as UTF-8 text (invalid bytes replaced), for display. */
  text: string
}

export class Ext4Image {
  readonly sb: Superblock
  readonly blockSize: number
  readonly blocksCount: number
  readonly groupCount: number
  readonly inodeSize: number
  private readonly dev: ReadAt
  private readonly verifier: Verifier
  private readonly groups = new Map<number, GroupDesc>()
  /** By block, with the owner it was verified for (its checksum chains that inode's number and generation). */
  private readonly nodes = new Map<number, { node: ExtentNode; ino: number; generation: number }>()

  private constructor(dev: ReadAt, sb: Superblock, verifier: Verifier) {
    this.dev = dev
    this.sb = sb
    this.verifier = verifier
    this.blockSize = blockSize(sb)
    this.blocksCount = blocksCount(sb)
    this.groupCount = groupCount(sb)
    this.inodeSize = inodeSize(sb)
  }

  /** Read and check the superblock; refuse an image we cannot read correctly. */
  static async open(dev: ReadAt, opts: OpenOptions = {}): Promise<Ext4Image> {
    if (dev.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
      throw new FormatError('EXT4_TRUNCATED', `image of ${dev.size} bytes ends before the superblock (needs ${SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE})`)
    }
    const raw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
    const sb = decodeSuperblock(raw)
    if (sb.magic !== EXT4_SUPER_MAGIC) throw new FormatError('EXT4_BAD_MAGIC', `bad magic 0x${sb.magic.toString(16)} (not ext2/3/4)`)
    if (sb.logBlockSize > 6) throw new FormatError('EXT4_BAD_BLOCK_SIZE', `block size 2^${10 + sb.logBlockSize} outside 1024..65536`)
    const verifier = opts.verifier ?? (hasMetadataCsum(sb) ? metadataCsumVerifier(sb) : NO_VERIFY)
    verifier.verify('superblock', raw, { block: sb.logBlockSize === 0 ? 1 : 0 })
    const unreadable = unreadableFeatures(sb)
    if (unreadable.length > 0) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `unsupported feature${unreadable.length > 1 ? 's' : ''}: ${unreadable.join(' ')}`)
    if (hasFeature(sb, 'incompat', 'needs_recovery')) throw new FormatError('EXT4_NEEDS_RECOVERY', 'the journal needs recovery (needs_recovery); replay it first (mount, or e2fsck)')
    checkGeometry(sb, dev.size)
    return new Ext4Image(dev, sb, verifier)
  }

  /** count whole blocks from block; every block must be inside the file system. */
  async readBlocks(block: number, count: number, where: string): Promise<Buffer> {
    if (!Number.isSafeInteger(block) || block < 0 || count < 1 || block + count > this.blocksCount) {
      throw corrupt(`${where}: block ${block}${count > 1 ? `+${count}` : ''} outside the file system (${this.blocksCount} blocks)`)
    }
    return this.dev.read(block * this.blockSize, count * this.blockSize)
  }

  /** Group descriptor g, from the table after the superblock (meta_bg is refused at open). */
  async groupDesc(g: number): Promise<GroupDesc> {
    const hit = this.groups.get(g)
    if (hit !== undefined) return hit
    if (!Number.isInteger(g) || g < 0 || g >= this.groupCount) throw corrupt(`group ${g} outside 0..${this.groupCount - 1}`)
    const size = descSize(this.sb)
    const at = (this.sb.firstDataBlock + 1) * this.blockSize + g * size
    const raw = await this.dev.read(at, size)
    this.verifier.verify('group-desc', raw, { block: Math.floor(at / this.blockSize), group: g })
    const gd = decodeGroupDesc(raw, 0, size)
    this.groups.set(g, gd)
    return gd
  }

  /**
   * Offer group g's block and inode bitmaps to the verifier (with
   * metadata_csum their checksums live in the group descriptor). A bitmap the
   * group marks uninitialised is never read from disk, so it is not checked.
   */
  async checkBitmaps(g: number): Promise<void> {
    const gd = await this.groupDesc(g)
    if ((gd.flags & BG_BLOCK_UNINIT) === 0) {
      const raw = await this.readBlocks(gd.blockBitmap, 1, `group ${g} block bitmap`)
      this.verifier.verify('block-bitmap', raw, { block: gd.blockBitmap, group: g, stored: gd.blockBitmapCsum })
    }
    if ((gd.flags & BG_INODE_UNINIT) === 0) {
      const raw = await this.readBlocks(gd.inodeBitmap, 1, `group ${g} inode bitmap`)
      this.verifier.verify('inode-bitmap', raw, { block: gd.inodeBitmap, group: g, stored: gd.inodeBitmapCsum })
    }
  }

  /** Inode ino (1-based): group (ino-1)/s_inodes_per_group, slot (ino-1)%s_inodes_per_group of its table. */
  async readInode(ino: number): Promise<Inode> {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.sb.inodesCount) throw corrupt(`inode ${ino} outside 1..${this.sb.inodesCount}`)
    const group = Math.floor((ino - 1) / this.sb.inodesPerGroup)
    const index = (ino - 1) % this.sb.inodesPerGroup
    const gd = await this.groupDesc(group)
    const tableBlocks = Math.ceil((this.sb.inodesPerGroup * this.inodeSize) / this.blockSize)
    if (gd.inodeTable < 1 || gd.inodeTable + tableBlocks > this.blocksCount) throw corrupt(`group ${group}: inode table at block ${gd.inodeTable} outside the file system`)
    const at = gd.inodeTable * this.blockSize + index * this.inodeSize
    const raw = await this.dev.read(at, this.inodeSize)
    // Checked before decoding, so a damaged field (i_extra_isize) is reported as the checksum failure it is.
    this.verifier.verify('inode', raw, { block: Math.floor(at / this.blockSize), ino, generation: raw.readUInt32LE(I_GENERATION_OFFSET) })
    try {
      return decodeInode(raw, 0, this.inodeSize, hasFeature(this.sb, 'ro_compat', 'huge_file'))
    } catch (err) {
      throw corrupt(`inode ${ino}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  private async extentNode(block: number, ino: number, generation: number): Promise<ExtentNode> {
    const hit = this.nodes.get(block)
    // Another inode naming the same block (damage, or a bug that shared it) gets it verified against itself.
    if (hit !== undefined && hit.ino === ino && hit.generation === generation) return hit.node
    const raw = await this.readBlocks(block, 1, `inode ${ino}`)
    this.verifier.verify('extent-block', raw, { block, ino, generation })
    const node = decodeExtentNode(raw, this.blockSize, `inode ${ino} extent block ${block}`)
    const oldest = this.nodes.keys().next()
    if (this.nodes.size >= EXTENT_NODE_CACHE && oldest.done !== true) this.nodes.delete(oldest.value)
    this.nodes.delete(block)
    this.nodes.set(block, { node, ino, generation })
    return node
  }

  /**
   * Map logical block lblk of an extent-mapped inode: descend from the root
   * in i_block, at each level into the last index whose key is <= lblk. Each
   * child must be exactly one level below its parent, so a corrupt tree
   * cannot loop; a hole reports where the next mapped block starts.
   */
  async mapBlock(ino: number, inode: Inode, lblk: number): Promise<BlockMapping> {
    if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) throw notExtentMapped(ino, inode)
    let node = decodeExtentNode(inode.block, I_BLOCK_SIZE, `inode ${ino} extent root`)
    let bound = Infinity
    for (;;) {
      if (node.header.depth === 0) {
        const i = lastAtOrBefore(node.extents, lblk)
        const e = node.extents[i]
        if (e !== undefined && lblk < e.block + e.len) {
          if (e.start + e.len > this.blocksCount) throw corrupt(`inode ${ino}: extent at logical ${e.block} maps blocks ${e.start}+${e.len} outside the file system`)
          return { extent: e }
        }
        const next = node.extents[i + 1]
        return { holeEnd: next !== undefined ? Math.min(next.block, bound) : bound }
      }
      const i = lastAtOrBefore(node.indexes, lblk)
      const ix = node.indexes[i]
      if (ix === undefined) return { holeEnd: Math.min(node.indexes[0]?.block ?? bound, bound) }
      const next = node.indexes[i + 1]
      if (next !== undefined) bound = Math.min(bound, next.block)
      const child = await this.extentNode(ix.leaf, ino, inode.generation)
      if (child.header.depth !== node.header.depth - 1) throw corrupt(`inode ${ino}: extent block ${ix.leaf} at depth ${child.header.depth} under depth ${node.header.depth}`)
      node = child
    }
  }

  /** Bytes [offset, offset+length) of a file, clipped to its size; holes and unwritten extents read as zeros. */
  async readFile(ino: number, inode: Inode, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new RangeError('bad offset or length')
    if (length > MAX_READ) throw new FormatError('EXT4_TOO_LARGE', `read of ${length} bytes (at most ${MAX_READ} at once)`)
    const end = Math.min(inode.size, offset + length)
    if (end <= offset) return Buffer.alloc(0)
    if ((inode.flags & INODE_FLAGS.INLINE_DATA) !== 0) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `inode ${ino}: inline data is not read (unsupported feature: inline_data)`)
    const out = Buffer.alloc(end - offset)
    const bs = this.blockSize
    let pos = offset
    while (pos < end) {
      const lblk = Math.floor(pos / bs)
      const m = await this.mapBlock(ino, inode, lblk)
      if (m.extent === undefined) {
        // A hole: out is already zero there.
        pos = m.holeEnd === Infinity ? end : Math.min(end, m.holeEnd * bs)
        continue
      }
      const e = m.extent
      const runEnd = Math.min(end, (e.block + e.len) * bs)
      if (!e.uninit) {
        const first = lblk
        const last = Math.floor((runEnd - 1) / bs)
        const data = await this.readBlocks(e.start + (first - e.block), last - first + 1, `inode ${ino}`)
        data.copy(out, pos - offset, pos - first * bs, runEnd - first * bs)
      }
      pos = runEnd
    }
    return out
  }

  /**
   * Every live entry of a directory, in block order. A linear scan of all
   * blocks: htree interior blocks parse as empty entries and are skipped.
   */
  async readDir(ino: number, inode?: Inode): Promise<ImageEntry[]> {
    const dir = inode ?? (await this.readInode(ino))
    if (!isDir(dir)) throw new VfsError('ENOTDIR', `inode ${ino} is not a directory`)
    if ((dir.flags & INODE_FLAGS.INLINE_DATA) !== 0) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `inode ${ino}: inline directory (unsupported feature: inline_data)`)
    const bs = this.blockSize
    const nblocks = Math.floor(dir.size / bs)
    if (dir.size % bs !== 0) throw corrupt(`directory ${ino}: size ${dir.size} not a multiple of the block size`)
    const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0
    const out: ImageEntry[] = []
    let lblk = 0
    while (lblk < nblocks) {
      const m = await this.mapBlock(ino, dir, lblk)
      if (m.extent === undefined) {
        lblk = Math.min(nblocks, m.holeEnd)
        continue
      }
      const e = m.extent
      const run = Math.min(e.block + e.len, nblocks, lblk + DIR_READ_RUN) - lblk
      if (e.uninit) {
        lblk += run
        continue
      }
      const data = await this.readBlocks(e.start + (lblk - e.block), run, `directory ${ino}`)
      for (let i = 0; i < run; i++) {
        const block = data.subarray(i * bs, (i + 1) * bs)
        // As the kernel tells them apart (__ext4_read_dirblock): in an indexed directory block 0 is
        // the htree root, and a block that is one empty entry spanning the block is an interior node.
        const dx = indexed && (lblk + i === 0 || (block.readUInt32LE(0) === 0 && recLenFromDisk(block.readUInt16LE(4), bs) === bs))
        this.verifier.verify(dx ? 'dx-block' : 'dir-block', block, { block: e.start + (lblk + i - e.block), ino, generation: dir.generation })
        for (const d of parseDirBlock(block, bs, `directory ${ino} block ${lblk + i}`).entries) out.push({ ...d, text: d.name.toString('utf8') })
      }
      lblk += run
    }
    return out
  }

  /** Is this directory read through its htree index (INDEX_FL on a dir_index file system)? */
  isIndexed(dir: Inode): boolean {
    return (dir.flags & INODE_FLAGS.INDEX) !== 0 && hasFeature(this.sb, 'compat', 'dir_index')
  }

  /** Logical block lblk of directory ino, its checksum checked as kind; a hole or a block past the size is corrupt. */
  async dirBlock(ino: number, dir: Inode, lblk: number, kind: 'dx-block' | 'dir-block'): Promise<Buffer> {
    if (lblk < 0 || lblk >= Math.floor(dir.size / this.blockSize)) throw corrupt(`directory ${ino}: block ${lblk} past its size ${dir.size}`)
    const m = await this.mapBlock(ino, dir, lblk)
    if (m.extent === undefined || m.extent.uninit) throw corrupt(`directory ${ino}: block ${lblk} is a hole`)
    const pblk = m.extent.start + (lblk - m.extent.block)
    const buf = await this.readBlocks(pblk, 1, `directory ${ino}`)
    this.verifier.verify(kind, buf, { block: pblk, ino, generation: dir.generation })
    return buf
  }

  /** An indexed directory as the htree code reads it (htree-lookup.ts, htree-readdir.ts). */
  dxDir(ino: number, dir: Inode): DxDir {
    if (dir.size % this.blockSize !== 0) throw corrupt(`directory ${ino}: size ${dir.size} not a multiple of the block size`)
    return {
      ino,
      blockSize: this.blockSize,
      blocks: dir.size / this.blockSize,
      csum: hasMetadataCsum(this.sb),
      largeDir: hasFeature(this.sb, 'incompat', 'large_dir'),
      hashSeed: this.sb.hashSeed,
      sbFlags: this.sb.flags,
      block: (lblk, kind) => this.dirBlock(ino, dir, lblk, kind),
    }
  }

  /** The entry called name in directory ino: through the htree when it is indexed (never a scan), else a linear scan. */
  async findEntry(ino: number, dir: Inode, name: Buffer): Promise<ImageEntry | undefined> {
    if (this.isIndexed(dir)) {
      const hit = await htreeFind(this.dxDir(ino, dir), name)
      return hit === undefined ? undefined : { ...hit.entry, text: hit.entry.name.toString('utf8') }
    }
    return (await this.readDir(ino, dir)).find((d) => d.name.equals(name))
  }

  /** A symlink's target: in i_block when short (a fast symlink), else in its data blocks. */
  async readlink(ino: number, inode?: Inode): Promise<Buffer> {
    const link = inode ?? (await this.readInode(ino))
    if (!isSymlink(link)) throw new VfsError('EINVAL', `inode ${ino} is not a symbolic link`)
    if (link.size > MAX_SYMLINK) throw corrupt(`symlink ${ino}: size ${link.size}`)
    if ((link.flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INLINE_DATA)) === 0 && link.size < I_BLOCK_SIZE) {
      return Buffer.from(link.block.subarray(0, link.size))
    }
    return this.readFile(ino, link, 0, link.size)
  }

  /**
   * The inode number of path (from the root; "." and ".." as the directories
   * say). Symlinks are followed in the middle of the path, not at its end
   * (lstat). Each component is found through the directory's htree when it
   * has one, else by a linear scan.
   */
  async lookup(path: string): Promise<number> {
    let follows = 0
    // followLast: the path is a symlink's target met mid-path, which must end in a directory, so a symlink at its end is followed too.
    const walk = async (start: number, parts: string[], followLast = false): Promise<number> => {
      let ino = start
      for (const [i, name] of parts.entries()) {
        const dir = await this.readInode(ino)
        if (!isDir(dir)) throw new VfsError('ENOTDIR', `${name}: a component before it is not a directory`)
        if (Buffer.byteLength(name) > 255) throw new VfsError('ENAMETOOLONG', name)
        const want = Buffer.from(name)
        const hit = await this.findEntry(ino, dir, want)
        if (hit === undefined) throw new VfsError('ENOENT', `${name}: not found`)
        const child = hit.inode
        if (i < parts.length - 1 || followLast) {
          const ci = await this.readInode(child)
          if (isSymlink(ci)) {
            if (++follows > MAX_SYMLINK_FOLLOWS) throw new VfsError('ELOOP', `${name}: too many symbolic links`)
            const target = (await this.readlink(child, ci)).toString('utf8')
            ino = await walk(target.startsWith('/') ? ROOT_INO : ino, components(target), true)
            continue
          }
        }
        ino = child
      }
      return ino
    }
    return walk(ROOT_INO, components(path))
  }
}

/** Index of the last entry whose first block is <= lblk, or -1 (entries are sorted by block). */
function lastAtOrBefore(entries: ReadonlyArray<{ block: number }>, lblk: number): number {
  let lo = 0
  let hi = entries.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((entries[mid]?.block ?? Infinity) <= lblk) lo = mid + 1
    else hi = mid
  }
  return lo - 1
}

function components(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.')
}

function notExtentMapped(ino: number, inode: Inode): FormatError {
  return new FormatError('EXT4_UNSUPPORTED_FEATURE', `inode ${ino}: block-mapped (ext2/3 style, flags 0x${inode.flags.toString(16)}) data is not read yet`)
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0
}

/** Everything open() needs to trust before using the superblock's numbers as offsets. */
function checkGeometry(sb: Superblock, imageSize: number): void {
  const bad = (msg: string): FormatError => new FormatError('EXT4_BAD_GEOMETRY', msg)
  const bs = blockSize(sb)
  const count = blocksCount(sb)
  if (sb.revLevel > 1) throw bad(`revision ${sb.revLevel}`)
  if (sb.blocksPerGroup < 8 || sb.blocksPerGroup > 8 * bs || sb.blocksPerGroup % 8 !== 0) throw bad(`s_blocks_per_group ${sb.blocksPerGroup}`)
  if (sb.inodesPerGroup < 1 || sb.inodesPerGroup > 8 * bs) throw bad(`s_inodes_per_group ${sb.inodesPerGroup}`)
  const isz = inodeSize(sb)
  if (isz < 128 || isz > bs || !isPowerOfTwo(isz)) throw bad(`inode size ${isz}`)
  const ds = descSize(sb)
  if (ds !== 32 && (ds < 64 || ds > 1024 || !isPowerOfTwo(ds))) throw bad(`group descriptor size ${ds}`)
  if (count < 1 || count >= 2 ** 48 || sb.firstDataBlock >= count) throw bad(`block count ${count}, first data block ${sb.firstDataBlock}`)
  if (count * bs > imageSize) throw new FormatError('EXT4_IMAGE_TOO_SMALL', `the superblock counts ${count} blocks of ${bs} bytes (${count * bs}), the image holds ${imageSize}`)
  const groups = groupCount(sb)
  if (sb.inodesCount < 11 || sb.inodesCount > groups * sb.inodesPerGroup) throw bad(`s_inodes_count ${sb.inodesCount} for ${groups} groups of ${sb.inodesPerGroup}`)
  if ((sb.firstDataBlock + 1) * bs + groups * ds > count * bs) throw bad(`${groups} group descriptors do not fit the image`)
}
