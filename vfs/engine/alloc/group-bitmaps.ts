/*
 * The two bitmaps of each group, read and changed through the transaction handle. A bitmap the
 * group still marks uninitialised (BLOCK_UNINIT, INODE_UNINIT: mkfs wrote nothing there) is built
 * in memory from the layout for searching, and written out, with the flag cleared, only when the
 * group is first allocated from (ext4_init_block_bitmap, ext4_init_inode_bitmap). A bitmap read
 * from disk is checked against the checksum its descriptor keeps, once.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { corrupt, FormatError } from '../format/errors.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT } from '../format/group-desc.ts'
import type { MetaTxn } from '../txn/txn.ts'
import { countClear, setBits } from './bitmap.ts'
import { blocksInGroup, groupFirstBlock } from './geometry.ts'
import type { MetadataMap } from './geometry.ts'
import type { GroupTable } from './group-table.ts'

export class GroupBitmaps {
  readonly #gt: GroupTable
  readonly #meta: MetadataMap
  readonly #checkedBlock = new Set<number>()
  readonly #checkedInode = new Set<number>()

  constructor(gt: GroupTable, meta: MetadataMap) {
    this.#gt = gt
    this.#meta = meta
  }

  /** crc32c of a bitmap's bits (the group's count of them, in bytes), as the descriptor stores it. */
  csum(map: Buffer, bits: number): number {
    return crc32cUpdate(this.#gt.seed, map.subarray(0, bits / 8))
  }

  /** What BLOCK_UNINIT means: in use are exactly the metadata blocks inside the group, and the bits past its end. */
  buildBlockMap(g: number): Buffer {
    const geo = this.#gt.geo
    const map = Buffer.alloc(geo.blockSize)
    const first = groupFirstBlock(geo, g)
    const n = blocksInGroup(geo, g)
    this.#meta.each(first, first + n, (s, e) => {
      setBits(map, s - first, e - first)
    })
    setBits(map, n, geo.blockSize * 8)
    const free = countClear(map, n)
    const s = this.#gt.group(g)
    if (free !== s.freeBlocks) throw corrupt(`group ${g}: BLOCK_UNINIT with ${s.freeBlocks} free blocks, but its layout leaves ${free}`)
    return map
  }

  buildInodeMap(): Buffer {
    const geo = this.#gt.geo
    const map = Buffer.alloc(geo.blockSize)
    setBits(map, geo.inodesPerGroup, geo.blockSize * 8)
    return map
  }

  /** Group g's block bitmap for searching: the live buffer, or a built one the caller must not change. */
  async blockMap(h: MetaTxn, g: number): Promise<{ map: Buffer; live: boolean }> {
    const s = this.#gt.group(g)
    if ((s.flags & BG_BLOCK_UNINIT) !== 0) return { map: this.buildBlockMap(g), live: false }
    const map = await h.get(s.blockBitmap)
    if (!this.#checkedBlock.has(g)) {
      this.#check('block-bitmap', g, s.blockBitmap, map, this.#gt.geo.blocksPerGroup, s.blockBitmapCsum)
      this.#checkedBlock.add(g)
    }
    return { map, live: true }
  }

  /** Group g's block bitmap to change: written out first if the group was BLOCK_UNINIT. */
  async liveBlockMap(h: MetaTxn, g: number): Promise<Buffer> {
    const s = this.#gt.group(g)
    if ((s.flags & BG_BLOCK_UNINIT) === 0) return (await this.blockMap(h, g)).map
    const built = this.buildBlockMap(g)
    const map = h.fresh(s.blockBitmap)
    built.copy(map)
    this.#checkedBlock.add(g)
    await this.#gt.set(h, g, { flags: s.flags & ~BG_BLOCK_UNINIT, blockBitmapCsum: this.csum(map, this.#gt.geo.blocksPerGroup) })
    return map
  }

  /** Group g's inode bitmap to change. A group taking its first inode gets both bitmaps written (e2fsck refuses an inode bitmap in use beside an uninitialised block bitmap). */
  async liveInodeMap(h: MetaTxn, g: number): Promise<Buffer> {
    const s = this.#gt.group(g)
    const ipg = this.#gt.geo.inodesPerGroup
    if ((s.flags & BG_INODE_UNINIT) !== 0) {
      await this.liveBlockMap(h, g)
      const map = h.fresh(s.inodeBitmap)
      this.buildInodeMap().copy(map)
      this.#checkedInode.add(g)
      await this.#gt.set(h, g, { flags: s.flags & ~BG_INODE_UNINIT, inodeBitmapCsum: this.csum(map, ipg) })
      return map
    }
    const map = await h.get(s.inodeBitmap)
    if (!this.#checkedInode.has(g)) {
      this.#check('inode-bitmap', g, s.inodeBitmap, map, ipg, s.inodeBitmapCsum)
      this.#checkedInode.add(g)
    }
    return map
  }

  #check(kind: string, g: number, block: number, map: Buffer, bits: number, stored: number): void {
    if (!this.#gt.metadataCsum) return
    const wide = this.#gt.geo.descSize >= 64
    const c = this.csum(map, bits)
    const want = wide ? c : c & 0xffff
    if (want !== stored) throw new FormatError('EXT4_BAD_CHECKSUM', `${kind} of group ${g} in block ${block}: checksum 0x${stored.toString(16)} in the descriptor, computed 0x${want.toString(16)}`)
  }
}
