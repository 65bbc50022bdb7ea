/*
 * A DirFile for tests, standing in for the extent code: a directory made by
 * debugfs (one block) grows into a pool of blocks taken from a block group
 * that mkfs left wholly free and uninitialised. finish() writes what the
 * extent and allocator code will write for real: the pool blocks used
 * marked in the group's bitmap (with its checksum), the group descriptor's
 * count, flag and checksum, the superblock's free count and checksum, and
 * the inode's size, i_blocks, flags and extents (with its checksum).
 */
import { BG_BLOCK_UNINIT } from '../../../vfs/engine/format/group-desc.ts'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import { blocksCount, descSize, SUPERBLOCK_OFFSET } from '../../../vfs/engine/format/superblock.ts'
import type { Superblock } from '../../../vfs/engine/format/superblock.ts'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { csumSeed, groupDescCsum, inodeCsum, superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import type { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import type { MetaTxn } from '../../../vfs/engine/txn/txn.ts'
import type { DirFile } from '../../../vfs/engine/dir/dir-file.ts'

const I_SIZE_LO = 0x4
const I_LINKS = 0x1a
const I_BLOCKS_LO = 0x1c
const I_FLAGS = 0x20
const I_BLOCK = 0x28
const I_SIZE_HI = 0x6c
const I_CSUM_LO = 0x7c
const I_CSUM_HI = 0x82
const GD_FREE_LO = 0xc
const GD_FREE_HI = 0x2c
const GD_FLAGS = 0x12
const GD_BBITMAP_CSUM_LO = 0x18
const GD_BBITMAP_CSUM_HI = 0x38
const GD_CSUM = 0x1e
const SB_FREE_LO = 0xc
const SB_FREE_HI = 0x158
const SB_CSUM = 0x3fc
const MAX_EXTENT_LEN = 32768

/** Where inode ino lives: its table block and the byte offset in it. */
async function inodeSlot(img: Ext4Image, ino: number): Promise<{ block: number; off: number }> {
  const g = Math.floor((ino - 1) / img.sb.inodesPerGroup)
  const idx = (ino - 1) % img.sb.inodesPerGroup
  const gd = await img.groupDesc(g)
  const at = idx * img.inodeSize
  return { block: gd.inodeTable + Math.floor(at / img.blockSize), off: at % img.blockSize }
}

/** Change inode ino's raw bytes through h, then recompute its checksum. */
export async function patchInode(h: MetaTxn, img: Ext4Image, ino: number, fn: (raw: Buffer) => void): Promise<void> {
  const { block, off } = await inodeSlot(img, ino)
  const buf = await h.get(block)
  const raw = buf.subarray(off, off + img.inodeSize)
  fn(raw)
  const c = inodeCsum(csumSeed(img.sb), ino, raw.readUInt32LE(0x64), raw)
  raw.writeUInt16LE(c & 0xffff, I_CSUM_LO)
  if (img.inodeSize > 128) raw.writeUInt16LE(c >>> 16, I_CSUM_HI)
  h.dirty(block)
}

/** sparse_super: groups 0, 1 and the powers of 3, 5 and 7 hold superblock backups. */
function hasBackup(g: number): boolean {
  if (g <= 1) return true
  return [3, 5, 7].some((p) => {
    let x = p
    while (x < g) x *= p
    return x === g
  })
}

export class PoolDir implements DirFile {
  readonly ino: number
  readonly generation: number
  readonly #img: Ext4Image
  readonly #first: number
  readonly #poolStart: number
  readonly #poolSize: number
  readonly #group: number
  #used = 0
  #indexed: boolean

  private constructor(img: Ext4Image, ino: number, generation: number, first: number, group: number, indexed: boolean, maxBlocks: number) {
    this.#img = img
    this.ino = ino
    this.generation = generation
    this.#first = first
    this.#group = group
    this.#poolStart = group * img.sb.blocksPerGroup + img.sb.firstDataBlock
    this.#poolSize = Math.min(img.sb.blocksPerGroup, MAX_EXTENT_LEN, blocksCount(img.sb) - this.#poolStart, maxBlocks)
    this.#indexed = indexed
  }

  /** Directory ino (one block, as debugfs makes it) growing into the first wholly free, uninitialised group without a superblock backup. */
  static async open(img: Ext4Image, ino: number, maxBlocks = Infinity): Promise<PoolDir> {
    const inode = await img.readInode(ino)
    if (inode.size !== img.blockSize) throw new Error(`directory ${ino} has ${inode.size} bytes, not one block`)
    const m = await img.mapBlock(ino, inode, 0)
    if (m.extent === undefined) throw new Error('no block 0')
    for (let g = 2; g < img.groupCount; g++) {
      const gd = await img.groupDesc(g)
      if (!hasBackup(g) && (gd.flags & BG_BLOCK_UNINIT) !== 0 && gd.freeBlocksCount === img.sb.blocksPerGroup) {
        return new PoolDir(img, ino, inode.generation, m.extent.start, g, (inode.flags & INODE_FLAGS.INDEX) !== 0, maxBlocks)
      }
    }
    throw new Error('no free group for the pool')
  }

  blockCount(): number {
    return 1 + this.#used
  }

  physical(_h: MetaTxn, lblk: number): Promise<number> {
    if (!Number.isInteger(lblk) || lblk < 0 || lblk > this.#used) return Promise.reject(new RangeError(`block ${lblk} of ${this.blockCount()}`))
    return Promise.resolve(lblk === 0 ? this.#first : this.#poolStart + lblk - 1)
  }

  append(): Promise<{ lblk: number; pblk: number }> {
    if (this.#used >= this.#poolSize) return Promise.reject(Object.assign(new Error('ENOSPC: test pool exhausted'), { code: 'ENOSPC' }))
    this.#used++
    return Promise.resolve({ lblk: this.#used, pblk: this.#poolStart + this.#used - 1 })
  }

  isIndexed(): boolean {
    return this.#indexed
  }

  setIndexed(): Promise<void> {
    this.#indexed = true
    return Promise.resolve()
  }

  /** Write the inode, bitmap, group descriptor and superblock for the blocks used. */
  async finish(h: MetaTxn): Promise<void> {
    const img = this.#img
    const bs = img.blockSize
    const sb: Superblock = img.sb
    const seed = csumSeed(sb)
    const k = this.#used
    const gd = await img.groupDesc(this.#group)
    // The group's bitmap: uninitialised until now, so all free but what we used.
    const bitmap = h.fresh(gd.blockBitmap)
    for (let i = 0; i < k; i++) bitmap[i >> 3] = (bitmap[i >> 3] ?? 0) | (1 << (i & 7))
    const bcs = crc32cUpdate(seed, bitmap.subarray(0, sb.clustersPerGroup / 8))
    const ds = descSize(sb)
    const gdAt = (sb.firstDataBlock + 1) * bs + this.#group * ds
    const gdBlock = Math.floor(gdAt / bs)
    const gdt = await h.get(gdBlock)
    const desc = gdt.subarray(gdAt % bs, (gdAt % bs) + ds)
    const free = gd.freeBlocksCount - k
    desc.writeUInt16LE(free & 0xffff, GD_FREE_LO)
    if (ds >= 64) desc.writeUInt16LE(free >>> 16, GD_FREE_HI)
    desc.writeUInt16LE(desc.readUInt16LE(GD_FLAGS) & ~BG_BLOCK_UNINIT, GD_FLAGS)
    desc.writeUInt16LE(bcs & 0xffff, GD_BBITMAP_CSUM_LO)
    if (ds >= 64) desc.writeUInt16LE(bcs >>> 16, GD_BBITMAP_CSUM_HI)
    desc.writeUInt16LE(groupDescCsum(seed, this.#group, desc), GD_CSUM)
    h.dirty(gdBlock)
    // The superblock's free count.
    const sbBlock = Math.floor(SUPERBLOCK_OFFSET / bs)
    const sbBuf = await h.get(sbBlock)
    const raw = sbBuf.subarray(SUPERBLOCK_OFFSET % bs, (SUPERBLOCK_OFFSET % bs) + 1024)
    const sbFree = raw.readUInt32LE(SB_FREE_LO) + raw.readUInt32LE(SB_FREE_HI) * 2 ** 32 - k
    raw.writeUInt32LE(sbFree % 2 ** 32, SB_FREE_LO)
    raw.writeUInt32LE(Math.floor(sbFree / 2 ** 32), SB_FREE_HI)
    raw.writeUInt32LE(superblockCsum(raw), SB_CSUM)
    h.dirty(sbBlock)
    // The inode: size, i_blocks, flags, and the extents [0 → first], [1..k → pool].
    const blocks = 1 + k
    await patchInode(h, img, this.ino, (ir) => {
      ir.writeUInt32LE((blocks * bs) % 2 ** 32, I_SIZE_LO)
      ir.writeUInt32LE(Math.floor((blocks * bs) / 2 ** 32), I_SIZE_HI)
      ir.writeUInt32LE((blocks * bs) / 512, I_BLOCKS_LO)
      if (this.#indexed) ir.writeUInt32LE(ir.readUInt32LE(I_FLAGS) | INODE_FLAGS.INDEX, I_FLAGS)
      const eh = ir.subarray(I_BLOCK, I_BLOCK + 60)
      eh.fill(0)
      eh.writeUInt16LE(0xf30a, 0)
      eh.writeUInt16LE(k > 0 ? 2 : 1, 2)
      eh.writeUInt16LE(4, 4)
      const ext = (i: number, lblk: number, len: number, start: number): void => {
        const at = 12 + i * 12
        eh.writeUInt32LE(lblk, at)
        eh.writeUInt16LE(len, at + 4)
        eh.writeUInt16LE(Math.floor(start / 2 ** 32), at + 6)
        eh.writeUInt32LE(start % 2 ** 32, at + 8)
      }
      ext(0, 0, 1, this.#first)
      if (k > 0) ext(1, 1, k, this.#poolStart)
    })
  }
}

/** Set inode ino's link count. */
export async function setLinks(h: MetaTxn, img: Ext4Image, ino: number, links: number): Promise<void> {
  await patchInode(h, img, ino, (raw) => {
    raw.writeUInt16LE(links, I_LINKS)
  })
}
