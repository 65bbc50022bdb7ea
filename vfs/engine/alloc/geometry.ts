/*
 * Where a file system's own metadata lies, computed from the superblock and the group descriptors
 * (super.rst "Block Groups", group_descr.rst): the superblock and its backups with the descriptor
 * table and the reserved GDT blocks behind each, then every group's two bitmaps and inode table,
 * which flex_bg packs together in the first group of a flex group. The allocator uses it twice:
 * to build the bitmap of a group still marked BLOCK_UNINIT (nothing but metadata is in use there)
 * and as a last check that a block it hands out or takes back is not metadata.
 */
import { corrupt, FormatError } from '../format/errors.ts'
import { hasFeature } from '../format/features.ts'
import { blocksCount, blockSize, descSize, EXT4_SUPER_MAGIC, groupCount, inodeSize, reservedBlocksCount, SUPERBLOCK_OFFSET } from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'

export interface Geometry {
  readonly blockSize: number
  readonly blocksCount: number
  readonly firstDataBlock: number
  readonly blocksPerGroup: number
  readonly inodesPerGroup: number
  readonly inodesCount: number
  readonly inodeSize: number
  readonly firstIno: number
  readonly groupCount: number
  readonly descSize: number
  /** Blocks of the group descriptor table (not counting reserved GDT blocks). */
  readonly gdtBlocks: number
  readonly reservedGdtBlocks: number
  /** Blocks of one group's inode table. */
  readonly itableBlocks: number
  /** The block holding the primary superblock, and the superblock's offset inside it. */
  readonly sbBlock: number
  readonly sbOffset: number
  /** s_r_blocks_count: blocks kept back for root. */
  readonly reservedBlocks: number
  readonly sb: Superblock
}

/** Checks the numbers the allocator will use as offsets and loop bounds, against the device's size. */
export function geometryOf(sb: Superblock, deviceBytes: number): Geometry {
  const bad = (msg: string): FormatError => new FormatError('EXT4_BAD_GEOMETRY', msg)
  if (sb.magic !== EXT4_SUPER_MAGIC) throw new FormatError('EXT4_BAD_MAGIC', `bad magic 0x${sb.magic.toString(16)} (not ext2/3/4)`)
  if (sb.logBlockSize > 6) throw new FormatError('EXT4_BAD_BLOCK_SIZE', `block size 2^${10 + sb.logBlockSize} outside 1024..65536`)
  // Descriptors scattered by meta_bg and clusters of bigalloc change where everything is: not written.
  const refused = hasFeature(sb, 'incompat', 'meta_bg') ? 'meta_bg' : hasFeature(sb, 'ro_compat', 'bigalloc') ? 'bigalloc' : undefined
  if (refused !== undefined) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `the allocator does not write ${refused} file systems (unsupported feature: ${refused})`)
  const bs = blockSize(sb)
  const count = blocksCount(sb)
  const isz = inodeSize(sb)
  const ds = descSize(sb)
  if (sb.blocksPerGroup < 8 || sb.blocksPerGroup > 8 * bs || sb.blocksPerGroup % 8 !== 0) throw bad(`s_blocks_per_group ${sb.blocksPerGroup}`)
  if (sb.clustersPerGroup !== sb.blocksPerGroup) throw bad(`s_clusters_per_group ${sb.clustersPerGroup} differs from s_blocks_per_group ${sb.blocksPerGroup}`)
  if (sb.inodesPerGroup < 8 || sb.inodesPerGroup > 8 * bs || sb.inodesPerGroup % 8 !== 0) throw bad(`s_inodes_per_group ${sb.inodesPerGroup}`)
  if (isz < 128 || isz > bs || (isz & (isz - 1)) !== 0) throw bad(`inode size ${isz}`)
  if (ds !== 32 && (ds < 64 || ds > 1024 || (ds & (ds - 1)) !== 0)) throw bad(`group descriptor size ${ds}`)
  if (sb.firstDataBlock !== (bs === 1024 ? 1 : 0)) throw bad(`s_first_data_block ${sb.firstDataBlock} with ${bs}-byte blocks`)
  if (count <= sb.firstDataBlock || count * bs > deviceBytes) throw bad(`${count} blocks of ${bs} bytes on a device of ${deviceBytes} bytes`)
  const groups = groupCount(sb)
  if (sb.inodesCount !== groups * sb.inodesPerGroup) throw bad(`s_inodes_count ${sb.inodesCount} for ${groups} groups of ${sb.inodesPerGroup}`)
  const firstIno = sb.revLevel === 0 ? 11 : sb.firstIno
  if (firstIno < 11 || firstIno >= sb.inodesCount) throw bad(`s_first_ino ${firstIno}`)
  const gdtBlocks = Math.ceil((groups * ds) / bs)
  const itableBlocks = Math.ceil((sb.inodesPerGroup * isz) / bs)
  if (1 + gdtBlocks + sb.reservedGdtBlocks + 2 + itableBlocks > sb.blocksPerGroup * Math.min(groups, 16)) throw bad(`metadata of ${groups} groups does not fit`)
  const reservedBlocks = reservedBlocksCount(sb)
  if (reservedBlocks > count) throw bad(`s_r_blocks_count ${reservedBlocks} over ${count} blocks`)
  return {
    blockSize: bs,
    blocksCount: count,
    firstDataBlock: sb.firstDataBlock,
    blocksPerGroup: sb.blocksPerGroup,
    inodesPerGroup: sb.inodesPerGroup,
    inodesCount: sb.inodesCount,
    inodeSize: isz,
    firstIno,
    groupCount: groups,
    descSize: ds,
    gdtBlocks,
    reservedGdtBlocks: sb.reservedGdtBlocks,
    itableBlocks,
    sbBlock: Math.floor(SUPERBLOCK_OFFSET / bs),
    sbOffset: SUPERBLOCK_OFFSET % bs,
    reservedBlocks,
    sb,
  }
}

export function groupFirstBlock(geo: Geometry, g: number): number {
  return geo.firstDataBlock + g * geo.blocksPerGroup
}

/** The last group may be short. */
export function blocksInGroup(geo: Geometry, g: number): number {
  return Math.min(geo.blocksPerGroup, geo.blocksCount - groupFirstBlock(geo, g))
}

export function groupOfBlock(geo: Geometry, block: number): number {
  return Math.floor((block - geo.firstDataBlock) / geo.blocksPerGroup)
}

function isPowerOf(n: number, base: number): boolean {
  let x = base
  while (x < n) x *= base
  return x === n
}

/** Does group g hold a superblock copy (and a descriptor table behind it)? sparse_super: 0, 1, powers of 3, 5, 7. */
export function hasSuperBackup(geo: Geometry, g: number): boolean {
  if (g === 0) return true
  if (hasFeature(geo.sb, 'compat', 'sparse_super2')) return g === geo.sb.backupBgs0 || g === geo.sb.backupBgs1
  if (!hasFeature(geo.sb, 'ro_compat', 'sparse_super')) return true
  return g === 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7)
}

/** Blocks at the start of group g taken by the superblock copy, the descriptor table and the reserved GDT blocks. */
export function baseMetaBlocks(geo: Geometry, g: number): number {
  return hasSuperBackup(geo, g) ? 1 + geo.gdtBlocks + geo.reservedGdtBlocks : 0
}

/** The three per-group locations the descriptors give. */
export interface GroupPlaces {
  blockBitmap: number
  inodeBitmap: number
  inodeTable: number
}

/**
 * Every metadata block of the file system as sorted, merged [start, end) ranges: block 0 before
 * the first group of a 1 KiB-block fs, each group's base metadata, bitmaps and inode table.
 */
export class MetadataMap {
  readonly #starts: number[] = []
  readonly #ends: number[] = []

  constructor(geo: Geometry, places: readonly GroupPlaces[]) {
    const ranges: Array<[number, number]> = []
    if (geo.firstDataBlock > 0) ranges.push([0, geo.firstDataBlock])
    for (let g = 0; g < geo.groupCount; g++) {
      const base = baseMetaBlocks(geo, g)
      if (base > 0) ranges.push([groupFirstBlock(geo, g), groupFirstBlock(geo, g) + base])
      const p = places[g]
      if (p === undefined) throw corrupt(`group ${g}: no descriptor`)
      ranges.push([p.blockBitmap, p.blockBitmap + 1], [p.inodeBitmap, p.inodeBitmap + 1], [p.inodeTable, p.inodeTable + geo.itableBlocks])
    }
    ranges.sort((a, b) => a[0] - b[0])
    for (const [s, e] of ranges) {
      const last = this.#ends.length - 1
      if (last >= 0 && s <= (this.#ends[last] ?? 0)) this.#ends[last] = Math.max(this.#ends[last] ?? 0, e)
      else {
        this.#starts.push(s)
        this.#ends.push(e)
      }
    }
  }

  /** Does [start, start + count) touch any metadata block? */
  overlaps(start: number, count: number): boolean {
    // The last range starting before the end of ours is the only one that can reach into it.
    let lo = 0
    let hi = this.#starts.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.#starts[mid] ?? Infinity) < start + count) lo = mid + 1
      else hi = mid
    }
    return lo > 0 && (this.#ends[lo - 1] ?? 0) > start
  }

  /** Calls mark(start, end) for each metadata range clipped to [from, to). */
  each(from: number, to: number, mark: (start: number, end: number) => void): void {
    for (let i = 0; i < this.#starts.length; i++) {
      const s = Math.max(from, this.#starts[i] ?? 0)
      const e = Math.min(to, this.#ends[i] ?? 0)
      if (s < e) mark(s, e)
    }
  }
}

/** True when the image keeps group descriptor checksums (and may therefore use the UNINIT flags). */
export function hasGroupCsum(sb: Superblock): boolean {
  return hasFeature(sb, 'ro_compat', 'metadata_csum') || hasFeature(sb, 'ro_compat', 'uninit_bg')
}
