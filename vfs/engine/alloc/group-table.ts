/*
 * The group descriptor table as the allocator keeps it: the descriptors live in the blocks after
 * the primary superblock and change only through a transaction handle (each change recomputes the
 * descriptor's checksum); a decoded summary of each stays in memory so group choice and ENOSPC
 * checks cost no I/O. The superblock's free counters are rewritten from the summaries' totals,
 * which is what e2fsck counts them against. Backup descriptors are left alone, as the kernel does.
 */
import { hasFeature } from '../format/features.ts'
import { corrupt, FormatError } from '../format/errors.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, decodeGroupDesc, GROUP_DESC_CHECKSUM_OFFSET } from '../format/group-desc.ts'
import { SUPERBLOCK_CHECKSUM_OFFSET } from '../format/superblock.ts'
import { csumSeed, groupDescCsum, superblockCsum } from '../reader/csum-verifier.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import { crc16Update } from './crc16.ts'
import { blocksInGroup, hasGroupCsum } from './geometry.ts'
import type { Geometry, GroupPlaces } from './geometry.ts'

/** The descriptor fields the allocator changes: low half offset, high half offset (64-byte descriptors). */
const FIELD = {
  freeBlocks: [0x0c, 0x2c],
  freeInodes: [0x0e, 0x2e],
  usedDirs: [0x10, 0x30],
  flags: [0x12, undefined],
  blockBitmapCsum: [0x18, 0x38],
  inodeBitmapCsum: [0x1a, 0x3a],
  itableUnused: [0x1c, 0x32],
} as const satisfies Record<string, readonly [number, number | undefined]>

export type GroupField = keyof typeof FIELD

export interface GroupSummary extends GroupPlaces {
  freeBlocks: number
  freeInodes: number
  usedDirs: number
  flags: number
  blockBitmapCsum: number
  inodeBitmapCsum: number
  itableUnused: number
}

const SB_FREE_BLOCKS_LO = 0x0c
const SB_FREE_INODES = 0x10
const SB_FREE_BLOCKS_HI = 0x158

export class GroupTable {
  readonly geo: Geometry
  readonly groups: GroupSummary[]
  readonly metadataCsum: boolean
  readonly seed: number
  readonly #gdtStart: number
  readonly #uuid: Buffer
  readonly #gdtCsum: boolean
  readonly #is64: boolean
  freeBlocks = 0
  freeInodes = 0
  usedDirs = 0

  private constructor(geo: Geometry, groups: GroupSummary[]) {
    this.geo = geo
    this.groups = groups
    this.metadataCsum = hasFeature(geo.sb, 'ro_compat', 'metadata_csum')
    this.#gdtCsum = !this.metadataCsum && hasGroupCsum(geo.sb)
    this.seed = csumSeed(geo.sb)
    this.#uuid = geo.sb.uuid
    this.#gdtStart = geo.firstDataBlock + 1
    this.#is64 = hasFeature(geo.sb, 'incompat', '64bit')
    for (const s of groups) {
      this.freeBlocks += s.freeBlocks
      this.freeInodes += s.freeInodes
      this.usedDirs += s.usedDirs
    }
  }

  /** Reads and checks every descriptor (checksum, places inside the fs, counts within the group). */
  static async load(txm: TxnManager, geo: Geometry): Promise<GroupTable> {
    const probe = new GroupTable(geo, [])
    const groups: GroupSummary[] = []
    const perBlock = geo.blockSize / geo.descSize
    for (let b = 0; b < geo.gdtBlocks; b++) {
      const buf = await txm.read(probe.#gdtStart + b)
      for (let i = 0; i < perBlock && b * perBlock + i < geo.groupCount; i++) {
        const g = b * perBlock + i
        const raw = buf.subarray(i * geo.descSize, (i + 1) * geo.descSize)
        const want = probe.checksum(g, raw)
        const have = raw.readUInt16LE(GROUP_DESC_CHECKSUM_OFFSET)
        if (want !== undefined && want !== have) {
          throw new FormatError('EXT4_BAD_CHECKSUM', `group-desc of group ${g} in block ${probe.#gdtStart + b}: checksum 0x${have.toString(16)} on disk, computed 0x${want.toString(16)}`)
        }
        groups.push(checkDesc(geo, g, raw))
      }
    }
    return new GroupTable(geo, groups)
  }

  /** The checksum descriptor raw of group g should carry, or undefined when the image keeps none. */
  checksum(g: number, raw: Buffer): number | undefined {
    if (this.metadataCsum) return groupDescCsum(this.seed, g, raw)
    if (!this.#gdtCsum) return undefined
    return groupDescCrc16(this.#uuid, g, raw)
  }

  group(g: number): GroupSummary {
    const s = this.groups[g]
    if (s === undefined) throw corrupt(`group ${g} outside 0..${this.groups.length - 1}`)
    return s
  }

  /** Writes the given fields of group g's descriptor (and the summary), then its checksum. */
  async set(h: MetaTxn, g: number, values: Partial<Record<GroupField, number>>): Promise<void> {
    const s = this.group(g)
    const perBlock = this.geo.blockSize / this.geo.descSize
    const block = this.#gdtStart + Math.floor(g / perBlock)
    const buf = await h.get(block)
    const at = (g % perBlock) * this.geo.descSize
    const wide = this.geo.descSize >= 64
    for (const [name, v] of Object.entries(values) as Array<[GroupField, number]>) {
      const [lo, hi] = FIELD[name]
      buf.writeUInt16LE(v & 0xffff, at + lo)
      if (hi !== undefined && wide) buf.writeUInt16LE(Math.floor(v / 0x10000) & 0xffff, at + hi)
      const delta = v - s[name]
      if (name === 'freeBlocks') this.freeBlocks += delta
      else if (name === 'freeInodes') this.freeInodes += delta
      else if (name === 'usedDirs') this.usedDirs += delta
      // Without the high halves a 32-byte descriptor keeps only 16 bits of a bitmap checksum.
      s[name] = name.endsWith('Csum') && !wide ? v & 0xffff : v
    }
    const raw = buf.subarray(at, at + this.geo.descSize)
    const sum = this.checksum(g, raw)
    if (sum !== undefined) buf.writeUInt16LE(sum, at + GROUP_DESC_CHECKSUM_OFFSET)
    h.dirty(block)
  }

  /** The superblock's free block and inode counters from the descriptors' totals, and its checksum. */
  async syncSuperblock(h: MetaTxn): Promise<void> {
    const buf = await h.get(this.geo.sbBlock)
    const sb = buf.subarray(this.geo.sbOffset, this.geo.sbOffset + 1024)
    sb.writeUInt32LE(this.freeBlocks % 2 ** 32, SB_FREE_BLOCKS_LO)
    if (this.#is64) sb.writeUInt32LE(Math.floor(this.freeBlocks / 2 ** 32), SB_FREE_BLOCKS_HI)
    sb.writeUInt32LE(this.freeInodes, SB_FREE_INODES)
    if (this.metadataCsum) sb.writeUInt32LE(superblockCsum(sb), SUPERBLOCK_CHECKSUM_OFFSET)
    h.dirty(this.geo.sbBlock)
  }
}

/** gdt_csum's bg_checksum (no metadata_csum): crc16 of the uuid, le32 group, and the descriptor without its checksum field. */
export function groupDescCrc16(uuid: Buffer, g: number, raw: Buffer): number {
  const le = Buffer.alloc(4)
  le.writeUInt32LE(g)
  let c = crc16Update(0xffff, uuid)
  c = crc16Update(c, le)
  c = crc16Update(c, raw.subarray(0, GROUP_DESC_CHECKSUM_OFFSET))
  return crc16Update(c, raw.subarray(GROUP_DESC_CHECKSUM_OFFSET + 2))
}

function checkDesc(geo: Geometry, g: number, raw: Buffer): GroupSummary {
  const gd = decodeGroupDesc(raw, 0, geo.descSize)
  const inFs = (b: number, n: number): boolean => b >= geo.firstDataBlock && b + n <= geo.blocksCount
  const bad = (what: string): never => {
    throw corrupt(`group ${g}: ${what}`)
  }
  if (!inFs(gd.blockBitmap, 1)) bad(`block bitmap at ${gd.blockBitmap} outside the file system`)
  if (!inFs(gd.inodeBitmap, 1)) bad(`inode bitmap at ${gd.inodeBitmap} outside the file system`)
  if (!inFs(gd.inodeTable, geo.itableBlocks)) bad(`inode table at ${gd.inodeTable} (${geo.itableBlocks} blocks) outside the file system`)
  if (gd.freeBlocksCount > blocksInGroup(geo, g)) bad(`${gd.freeBlocksCount} free blocks in a group of ${blocksInGroup(geo, g)}`)
  if (gd.freeInodesCount > geo.inodesPerGroup) bad(`${gd.freeInodesCount} free inodes in a group of ${geo.inodesPerGroup}`)
  if (gd.usedDirsCount > geo.inodesPerGroup - gd.freeInodesCount) bad(`${gd.usedDirsCount} directories but ${geo.inodesPerGroup - gd.freeInodesCount} inodes in use`)
  if (gd.itableUnused > gd.freeInodesCount) bad(`bg_itable_unused ${gd.itableUnused} over ${gd.freeInodesCount} free inodes`)
  // The UNINIT flags mean something only where descriptors are checksummed (e2fsck clears them otherwise).
  const flags = hasGroupCsum(geo.sb) ? gd.flags : gd.flags & ~(BG_BLOCK_UNINIT | BG_INODE_UNINIT)
  const itableUnused = hasGroupCsum(geo.sb) ? gd.itableUnused : 0
  return {
    blockBitmap: gd.blockBitmap,
    inodeBitmap: gd.inodeBitmap,
    inodeTable: gd.inodeTable,
    freeBlocks: gd.freeBlocksCount,
    freeInodes: gd.freeInodesCount,
    usedDirs: gd.usedDirsCount,
    flags,
    blockBitmapCsum: gd.blockBitmapCsum,
    inodeBitmapCsum: gd.inodeBitmapCsum,
    itableUnused,
  }
}
