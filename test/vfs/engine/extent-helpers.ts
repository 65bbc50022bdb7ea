/*
 * What the extent-tree tests share: an image from mkfs.ext4 with one empty regular file (made by
 * debugfs, so it is allocated and linked in the root), opened through DirectTxnManager; a small
 * allocator over the image's real block bitmaps (keeping group descriptors, their checksums and
 * the superblock's free count right, so e2fsck judges the result); and the inode writer the tests
 * need until the engine has its own.
 */
import type { Test } from 'tap'
import path from 'node:path'
import { VfsError } from '../../../vfs/errors.ts'
import type { Allocator } from '../../../vfs/engine/alloc/allocator.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { hasFeature } from '../../../vfs/engine/format/features.ts'
import { BG_BLOCK_UNINIT, decodeGroupDesc, GROUP_DESC_CHECKSUM_OFFSET } from '../../../vfs/engine/format/group-desc.ts'
import type { GroupDesc } from '../../../vfs/engine/format/group-desc.ts'
import { decodeInode, I_BLOCK_OFFSET, I_BLOCK_SIZE, INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET } from '../../../vfs/engine/format/inode.ts'
import type { Inode } from '../../../vfs/engine/format/inode.ts'
import { blocksCount, decodeSuperblock, descSize, groupCount, inodeSize, SUPERBLOCK_CHECKSUM_OFFSET } from '../../../vfs/engine/format/superblock.ts'
import type { Superblock } from '../../../vfs/engine/format/superblock.ts'
import { csumSeed, groupDescCsum, inodeCsum, superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { ExtentTree } from '../../../vfs/engine/extent/tree.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import type { MetaTxn } from '../../../vfs/engine/txn/txn.ts'
import { mkfs, rng, scratch, sh } from './format-helpers.ts'

/** The first inode debugfs hands out on a fresh file system (after the reserved ones). */
export const FILE_INO = 12

export interface Fs {
  file: string
  sb: Superblock
  bs: number
  seed: number
  dev: ImageFile
  tm: DirectTxnManager
  alloc: BitmapAllocator
  tree: ExtentTree
}

/** mkfs.ext4 a sparse image, create files `names` (empty, inode 12 on) with debugfs, open it. */
export async function makeFs(t: Test, opts: { bs: number; mib: number; names?: string[] }): Promise<Fs> {
  const dir = scratch(t, 'extent')
  const file = path.join(dir, 'img')
  mkfs(file, opts.mib * 2 ** 20, ['-b', String(opts.bs), '-O', 'extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize', '-E', 'lazy_itable_init=1'])
  for (const name of opts.names ?? ['f']) sh('debugfs', ['-w', '-R', `write /dev/null ${name}`, file])
  return openFs(t, file)
}

export async function openFs(t: Test, file: string): Promise<Fs> {
  const dev = await ImageFile.open(file)
  let closed = false
  t.teardown(async () => {
    if (!closed) await dev.close()
  })
  const sb = decodeSuperblock(await dev.read(1024, 1024))
  const bs = 1024 << sb.logBlockSize
  const seed = csumSeed(sb)
  const tm = new DirectTxnManager(dev, bs)
  const alloc = new BitmapAllocator(sb, bs, seed)
  const tree = new ExtentTree({ blockSize: bs, blocksCount: blocksCount(sb), csumSeed: seed, hugeFile: hasFeature(sb, 'ro_compat', 'huge_file'), allocator: alloc })
  const fs: Fs = { file, sb, bs, seed, dev, tm, alloc, tree }
  const close = fs.dev.close.bind(fs.dev)
  fs.dev.close = async () => {
    closed = true
    await close()
  }
  return fs
}

/** Commit everything and close the image, so e2fsck, the kernel or the reader can look. */
export async function closeFs(fs: Fs): Promise<void> {
  await fs.tm.close()
  await fs.dev.close()
}

function inodeLocation(fs: Fs, gd: GroupDesc, ino: number): { block: number; offset: number } {
  const isz = inodeSize(fs.sb)
  const byte = ((ino - 1) % fs.sb.inodesPerGroup) * isz
  return { block: gd.inodeTable + Math.floor(byte / fs.bs), offset: byte % fs.bs }
}

async function groupDescOf(fs: Fs, h: MetaTxn, g: number): Promise<GroupDesc> {
  const ds = descSize(fs.sb)
  const byte = g * ds
  const buf = await h.get(fs.sb.firstDataBlock + 1 + Math.floor(byte / fs.bs))
  return decodeGroupDesc(buf, byte % fs.bs, ds)
}

export async function readInode(fs: Fs, h: MetaTxn, ino: number): Promise<Inode> {
  const gd = await groupDescOf(fs, h, Math.floor((ino - 1) / fs.sb.inodesPerGroup))
  const at = inodeLocation(fs, gd, ino)
  const buf = await h.get(at.block)
  return decodeInode(buf, at.offset, inodeSize(fs.sb), hasFeature(fs.sb, 'ro_compat', 'huge_file'))
}

/** Store the fields the extent code changes (size, i_blocks, flags, i_block) and the inode's checksum. */
export async function writeInode(fs: Fs, h: MetaTxn, ino: number, inode: Inode): Promise<void> {
  const gd = await groupDescOf(fs, h, Math.floor((ino - 1) / fs.sb.inodesPerGroup))
  const at = inodeLocation(fs, gd, ino)
  const buf = await h.get(at.block)
  const raw = buf.subarray(at.offset, at.offset + inodeSize(fs.sb))
  raw.writeUInt32LE(inode.size % 2 ** 32, 0x4)
  raw.writeUInt32LE(Math.floor(inode.size / 2 ** 32), 0x6c)
  raw.writeUInt32LE(inode.blocks % 2 ** 32, 0x1c)
  raw.writeUInt16LE(Math.floor(inode.blocks / 2 ** 32), 0x74)
  raw.writeUInt32LE(inode.flags, 0x20)
  inode.block.copy(raw, I_BLOCK_OFFSET, 0, I_BLOCK_SIZE)
  const sum = inodeCsum(fs.seed, ino, inode.generation, raw)
  raw.writeUInt16LE(sum & 0xffff, INODE_CHECKSUM_LO_OFFSET)
  if (inode.extraIsize >= 4) raw.writeUInt16LE(sum >>> 16, INODE_CHECKSUM_HI_OFFSET)
  h.dirty(at.block)
}

/**
 * First-fit allocation over the real block bitmaps. `fragment` hands out single blocks with a
 * free block between them, so every extent is one block long and trees grow deep quickly. Freed
 * blocks are allocatable again only after the freeing transaction commits (txn.ts).
 */
export class BitmapAllocator implements Allocator {
  fragment = false
  /** Fail with ENOSPC after this many more allocations (failure-path tests). */
  failAfter = Infinity
  readonly #sb: Superblock
  readonly #bs: number
  readonly #seed: number
  readonly #count: number
  readonly #pending = new Set<number>()
  #cursor = 0

  constructor(sb: Superblock, bs: number, seed: number) {
    this.#sb = sb
    this.#bs = bs
    this.#seed = seed
    this.#count = blocksCount(sb)
  }

  async allocBlocks(h: MetaTxn, goal: number, count: number): Promise<{ start: number; count: number }> {
    if (this.failAfter-- <= 0) throw new VfsError('ENOSPC', 'test allocator: no space (failAfter)')
    const from = this.fragment ? this.#cursor : goal
    const want = this.fragment ? 1 : count
    const first = this.#sb.firstDataBlock
    let cur: { g: number; bitmap: Buffer } | undefined
    for (let n = 0; n < this.#count - first; n++) {
      const b = first + ((Math.max(from, first) - first + n) % (this.#count - first))
      const g = Math.floor((b - first) / this.#sb.blocksPerGroup)
      const bit = (b - first) % this.#sb.blocksPerGroup
      if (cur?.g !== g) {
        const gd = await this.#gd(h, g)
        if (gd.flags & BG_BLOCK_UNINIT) await this.#initGroup(h, g)
        cur = { g, bitmap: await h.get(gd.blockBitmap) }
      }
      const bitmap = cur.bitmap
      if (isSet(bitmap, bit) || this.#pending.has(b)) continue
      let len = 1
      while (len < want && b + len < this.#count && bit + len < this.#sb.blocksPerGroup && !isSet(bitmap, bit + len) && !this.#pending.has(b + len)) len++
      for (let i = 0; i < len; i++) setBit(bitmap, bit + i)
      await this.#account(h, g, -len)
      this.#cursor = b + len + 1
      return { start: b, count: len }
    }
    throw new VfsError('ENOSPC', 'test allocator: no free block')
  }

  async freeBlocks(h: MetaTxn, start: number, count: number, metadata: boolean): Promise<void> {
    const perGroup = new Map<number, number>()
    for (let b = start; b < start + count; b++) {
      const { g, bit, bitmap } = await this.#bitmapOf(h, b)
      if (!isSet(bitmap, bit)) throw new Error(`test allocator: block ${b} freed twice`)
      bitmap.writeUInt8(bitmap.readUInt8(bit >> 3) & ~(1 << (bit & 7)) & 0xff, bit >> 3)
      this.#pending.add(b)
      perGroup.set(g, (perGroup.get(g) ?? 0) + 1)
      if (metadata) h.revoke(b)
    }
    for (const [g, n] of perGroup) await this.#account(h, g, n)
    h.afterCommit(() => {
      for (let b = start; b < start + count; b++) this.#pending.delete(b)
    })
  }

  allocInode(): Promise<number> {
    return Promise.reject(new Error('test allocator: no inodes'))
  }

  freeInode(): Promise<void> {
    return Promise.reject(new Error('test allocator: no inodes'))
  }

  /** Give every BLOCK_UNINIT group a real bitmap, so start and end states compare bitmap to bitmap. */
  async initAll(h: MetaTxn): Promise<void> {
    for (let g = 0; g < groupCount(this.#sb); g++) if ((await this.#gd(h, g)).flags & BG_BLOCK_UNINIT) await this.#initGroup(h, g)
  }

  /** Group g's block bitmap bytes (a copy) and descriptor, for comparing start and end states. */
  async snapshot(h: MetaTxn): Promise<Array<{ bitmap: string; free: number }>> {
    const out = []
    for (let g = 0; g < groupCount(this.#sb); g++) {
      const gd = await this.#gd(h, g)
      out.push({ bitmap: gd.flags & BG_BLOCK_UNINIT ? 'uninit' : (await h.get(gd.blockBitmap)).toString('hex'), free: gd.freeBlocksCount })
    }
    return out
  }

  async #gd(h: MetaTxn, g: number): Promise<GroupDesc> {
    const ds = descSize(this.#sb)
    const buf = await h.get(this.#sb.firstDataBlock + 1 + Math.floor((g * ds) / this.#bs))
    return decodeGroupDesc(buf, (g * ds) % this.#bs, ds)
  }

  async #bitmapOf(h: MetaTxn, b: number): Promise<{ g: number; bit: number; bitmap: Buffer }> {
    const g = Math.floor((b - this.#sb.firstDataBlock) / this.#sb.blocksPerGroup)
    const gd = await this.#gd(h, g)
    return { g, bit: (b - this.#sb.firstDataBlock) % this.#sb.blocksPerGroup, bitmap: await h.get(gd.blockBitmap) }
  }

  /**
   * Give a BLOCK_UNINIT group a real bitmap. Its used blocks are its superblock backup and
   * descriptor copies at its start (flex_bg puts bitmaps and inode tables elsewhere; refused if not).
   */
  async #initGroup(h: MetaTxn, g: number): Promise<void> {
    const start = this.#sb.firstDataBlock + g * this.#sb.blocksPerGroup
    const end = start + this.#sb.blocksPerGroup
    for (let o = 0; o < groupCount(this.#sb); o++) {
      const gd = await this.#gd(h, o)
      for (const b of [gd.blockBitmap, gd.inodeBitmap, gd.inodeTable]) if (b >= start && b < end) throw new Error(`test allocator: group ${g} holds metadata of group ${o}`)
    }
    const gd = await this.#gd(h, g)
    const bitmap = h.fresh(gd.blockBitmap)
    const inGroup = Math.min(end, this.#count) - start
    for (let i = 0; i < inGroup - gd.freeBlocksCount; i++) setBit(bitmap, i)
    for (let i = inGroup; i < this.#bs * 8; i++) setBit(bitmap, i)
    await this.#account(h, g, 0, BG_BLOCK_UNINIT)
  }

  /** Change group g's free count by delta (and the superblock's), re-sum its bitmap and descriptor. */
  async #account(h: MetaTxn, g: number, delta: number, clearFlags = 0): Promise<void> {
    const ds = descSize(this.#sb)
    const gdtBlock = this.#sb.firstDataBlock + 1 + Math.floor((g * ds) / this.#bs)
    const buf = await h.get(gdtBlock)
    const at = (g * ds) % this.#bs
    const desc = buf.subarray(at, at + ds)
    const gd = decodeGroupDesc(buf, at, ds)
    const free = gd.freeBlocksCount + delta
    desc.writeUInt16LE(free & 0xffff, 0xc)
    if (ds >= 64) desc.writeUInt16LE(free >>> 16, 0x2c)
    desc.writeUInt16LE(gd.flags & ~clearFlags, 0x12)
    const bitmap = await h.get(gd.blockBitmap)
    const sum = crc32cUpdate(this.#seed, bitmap.subarray(0, this.#sb.clustersPerGroup / 8))
    desc.writeUInt16LE(sum & 0xffff, 0x18)
    if (ds >= 64) desc.writeUInt16LE(sum >>> 16, 0x38)
    desc.writeUInt16LE(groupDescCsum(this.#seed, g, desc), GROUP_DESC_CHECKSUM_OFFSET)
    h.dirty(gdtBlock)
    h.dirty(gd.blockBitmap)
    // The superblock's count (e2fsck's pass 5 compares it with the groups').
    const sbBlock = Math.floor(1024 / this.#bs)
    const sbBuf = await h.get(sbBlock)
    const raw = sbBuf.subarray(1024 % this.#bs, (1024 % this.#bs) + 1024)
    const total = raw.readUInt32LE(0xc) + raw.readUInt32LE(0x158) * 2 ** 32 + delta
    raw.writeUInt32LE(total % 2 ** 32, 0xc)
    raw.writeUInt32LE(Math.floor(total / 2 ** 32), 0x158)
    raw.writeUInt32LE(superblockCsum(raw), SUPERBLOCK_CHECKSUM_OFFSET)
    h.dirty(sbBlock)
  }
}

function setBit(bitmap: Buffer, bit: number): void {
  bitmap.writeUInt8(bitmap.readUInt8(bit >> 3) | (1 << (bit & 7)), bit >> 3)
}

function isSet(bitmap: Buffer, bit: number): boolean {
  return ((bitmap[bit >> 3] ?? 0xff) & (1 << (bit & 7))) !== 0
}

export { rng }

/** Distinct contents for data block lblk written under tag: every 8 bytes say which block and which write. */
export function blockData(bs: number, lblk: number, tag: number): Buffer {
  const out = Buffer.alloc(bs)
  for (let i = 0; i < bs; i += 8) {
    out.writeUInt32LE(lblk >>> 0, i)
    out.writeUInt32LE((tag ^ i) >>> 0, i + 4)
  }
  return out
}
