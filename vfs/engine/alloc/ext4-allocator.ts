/*
 * The Allocator (allocator.ts) over an ext4 image's bitmaps and group descriptors. Every change
 * goes through the caller's transaction handle; one operation at a time runs (a queue), since a
 * search awaits block reads and two interleaved searches would find the same free bits.
 */
import { randomInt } from 'node:crypto'
import type { Caller } from '../../types.ts'
import { VfsError } from '../../errors.ts'
import { corrupt, FormatError } from '../format/errors.ts'
import { hasFeature } from '../format/features.ts'
import { BG_INODE_UNINIT } from '../format/group-desc.ts'
import { decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../format/superblock.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import type { Allocator } from './allocator.ts'
import { allSet, clearBits, clearRun, findClear, setBits, testBit } from './bitmap.ts'
import { BusyBlocks } from './busy.ts'
import { blocksInGroup, geometryOf, groupFirstBlock, groupOfBlock, MetadataMap } from './geometry.ts'
import type { Geometry } from './geometry.ts'
import { GroupBitmaps } from './group-bitmaps.ts'
import { GroupTable } from './group-table.ts'
import { chooseGroup } from './orlov.ts'

export interface AllocatorOptions {
  /** Hand out the s_r_blocks_count blocks kept for root too (default: ENOSPC before touching them). */
  useReserved?: boolean
  /** A number in [0, 1) for Orlov's spread of top-level directories (tests pass a seeded one). */
  random?: () => number
}

const ROOT_INO = 2

/**
 * The row to align to, as the kernel's ext4_get_stripe_size reads the superblock: the stripe
 * width, else the stride, when it fits in a group; 0 (none) for 0, 1 or anything larger, which a
 * damaged superblock could hold.
 */
export function stripeOf(geo: Geometry): number {
  const { raidStripeWidth: width, raidStride: stride } = geo.sb
  const row = width > 0 && width <= geo.blocksPerGroup ? width : stride > 0 && stride <= geo.blocksPerGroup ? stride : 0
  return row > 1 ? row : 0
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m
}

interface Run {
  g: number
  start: number
  len: number
}

export class Ext4Allocator implements Allocator {
  readonly geometry: Geometry
  readonly groups: GroupTable
  readonly #meta: MetadataMap
  readonly #maps: GroupBitmaps
  readonly #busy = new BusyBlocks()
  readonly #useReserved: boolean
  readonly #random: () => number
  /** The RAID row large file-data runs start on (stripeOf), 0 when none. */
  readonly #stripe: number
  #queue: Promise<unknown> = Promise.resolve()

  private constructor(geo: Geometry, groups: GroupTable, options: AllocatorOptions) {
    this.geometry = geo
    this.groups = groups
    this.#meta = new MetadataMap(geo, groups.groups)
    this.#maps = new GroupBitmaps(groups, this.#meta)
    this.#useReserved = options.useReserved ?? false
    this.#random = options.random ?? ((): number => randomInt(2 ** 31) / 2 ** 31)
    this.#stripe = stripeOf(geo)
  }

  /** The RAID row (s_raid_stripe_width, else s_raid_stride) in blocks that allocations align to; 0: none. */
  get stripe(): number {
    return this.#stripe
  }

  /** Reads the superblock and the descriptors through txm; deviceBytes bounds every count they hold. */
  static async open(txm: TxnManager, deviceBytes: number, options: AllocatorOptions = {}): Promise<Ext4Allocator> {
    const bs = txm.blockSize
    const raw = await txm.read(Math.floor(SUPERBLOCK_OFFSET / bs))
    const at = SUPERBLOCK_OFFSET % bs
    const sb = decodeSuperblock(raw.subarray(at, at + SUPERBLOCK_SIZE))
    const geo = geometryOf(sb, deviceBytes)
    if (geo.blockSize !== bs) throw new FormatError('EXT4_BAD_GEOMETRY', `the superblock says ${geo.blockSize}-byte blocks, the transaction manager uses ${bs}`)
    return new Ext4Allocator(geo, await GroupTable.load(txm, geo), options)
  }

  /** Free blocks that can be handed out now: not busy, and not root's reserve unless useReserved. */
  get availableBlocks(): number {
    return Math.max(0, this.groups.freeBlocks - this.#busy.total - (this.#useReserved ? 0 : this.geometry.reservedBlocks))
  }

  /**
   * May the operation's caller (MetaTxn.caller) take the reserve? As ext4_has_free_clusters: root,
   * the superblock's s_def_resuid, or a member of s_def_resgid when that is not group 0. No caller
   * (a call from inside the process, a test) is unprivileged.
   */
  #callerMayUseReserve(c: Caller | undefined): boolean {
    if (c === undefined) return false
    const { defResuid, defResgid } = this.geometry.sb
    return c.uid === 0 || c.uid === defResuid || (defResgid !== 0 && (c.gid === defResgid || (c.gids ?? []).includes(defResgid)))
  }

  /**
   * Where a file without blocks yet should start looking (ext4_inode_to_goal_block): its inode's
   * group, or with flex_bg the first group of its flex group, where the packed bitmaps and inode
   * tables sit; there a regular file's data goes one group further, keeping directories' (and
   * symlinks') blocks near the metadata and file data after them.
   */
  goalForInode(ino: number, regular: boolean): number {
    const geo = this.geometry
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > geo.inodesCount) throw new RangeError(`goalForInode: inode ${ino}`)
    let g = Math.floor((ino - 1) / geo.inodesPerGroup)
    const flex = hasFeature(geo.sb, 'incompat', 'flex_bg') ? 2 ** geo.sb.logGroupsPerFlex : 1
    // The kernel's EXT4_FLEX_SIZE_DIR_ALLOC_SCHEME: only flex groups of at least 4 are treated this way.
    if (flex >= 4) {
      g -= g % flex
      if (regular && g + 1 < geo.groupCount) g++
    }
    const first = groupFirstBlock(geo, g)
    // A file's first extent goes on a row boundary when one is set (1 KiB blocks start groups at
    // block 1): the allocator keeps a free goal, and the file's later extents follow it, so the
    // file's row-aligned offsets stay row-aligned on the volume.
    if (!regular || this.#stripe === 0) return first
    const aligned = roundUp(first, this.#stripe)
    return aligned < groupFirstBlock(geo, g) + blocksInGroup(geo, g) ? aligned : first
  }

  /** Blocks freed by transactions not yet durable. */
  get busyBlocks(): number {
    return this.#busy.total
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => undefined)
    return run
  }

  allocBlocks(h: MetaTxn, goal: number, count: number): Promise<{ start: number; count: number }> {
    return this.#serial(async () => {
      if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`allocBlocks: count ${count}`)
      const avail = this.#callerMayUseReserve(h.caller) ? Math.max(0, this.groups.freeBlocks - this.#busy.total) : this.availableBlocks
      if (avail < 1) throw new VfsError('ENOSPC', `no free blocks (${this.groups.freeBlocks} free, ${this.#busy.total} awaiting commit, ${this.geometry.reservedBlocks} reserved)`)
      const want = Math.min(count, avail, this.geometry.blocksPerGroup)
      const run = (this.#stripe > 0 && want >= this.#stripe ? await this.#searchAligned(h, goal, want) : undefined) ?? (await this.#search(h, goal, want))
      if (run === undefined) throw corrupt(`the descriptors count ${this.groups.freeBlocks} free blocks, the bitmaps show none usable`)
      await this.#take(h, run)
      return { start: groupFirstBlock(this.geometry, run.g) + run.start, count: run.len }
    })
  }

  /**
   * The first run of want blocks at or after goal in goal's group, then in the following groups,
   * then before goal; failing that, the longest run seen. Runs are group-relative.
   */
  async #search(h: MetaTxn, goal: number, want: number): Promise<Run | undefined> {
    const geo = this.geometry
    const n = geo.groupCount
    const g0 = Number.isSafeInteger(goal) && goal >= geo.firstDataBlock && goal < geo.blocksCount ? groupOfBlock(geo, goal) : 0
    const from0 = Number.isSafeInteger(goal) && goal >= geo.firstDataBlock && goal < geo.blocksCount ? goal - groupFirstBlock(geo, g0) : 0
    let best: Run | undefined
    for (let i = 0; i <= n; i++) {
      const g = (g0 + i) % n
      const usable = this.groups.group(g).freeBlocks - this.#busy.inGroup(g)
      if (usable < 1 || (best !== undefined && usable <= best.len)) continue
      const map = await this.#searchMap(h, g)
      const size = blocksInGroup(geo, g)
      const [from, to] = i === 0 ? [from0, size] : i === n ? [0, Math.min(size, from0 + want)] : [0, size]
      for (let b = findClear(map, from, to); b >= 0 && b < to; b = findClear(map, b, to)) {
        const len = clearRun(map, b, want, size)
        if (len >= want) return { g, start: b, len: want }
        if (best === undefined || len > best.len) best = { g, start: b, len }
        b += len
      }
    }
    return best
  }

  /**
   * For a request of at least a RAID row (file data; metadata asks for a block or a few): the
   * goal itself when want blocks are free there (a file's next extent right after its last, which
   * keeps the file's offsets and the volume's in step), else the first free run of want blocks
   * starting on a row boundary at or after the goal, then in the following groups, then before
   * it. A write of whole rows on a RAID-5 computes parity from the new data alone; one that
   * starts or ends inside a row must read the old data and parity first (read-modify-write).
   * Undefined when no such run exists: the caller then takes any run (alignment never costs an
   * allocation).
   */
  async #searchAligned(h: MetaTxn, goal: number, want: number): Promise<Run | undefined> {
    const geo = this.geometry
    const row = this.#stripe
    const n = geo.groupCount
    const inFs = Number.isSafeInteger(goal) && goal >= geo.firstDataBlock && goal < geo.blocksCount
    const g0 = inFs ? groupOfBlock(geo, goal) : 0
    const from0 = inFs ? goal - groupFirstBlock(geo, g0) : 0
    for (let i = 0; i <= n; i++) {
      const g = (g0 + i) % n
      if (this.groups.group(g).freeBlocks - this.#busy.inGroup(g) < want) continue
      const map = await this.#searchMap(h, g)
      const first = groupFirstBlock(geo, g)
      const size = blocksInGroup(geo, g)
      const [from, to] = i === 0 ? [from0, size] : i === n ? [0, Math.min(size, from0)] : [0, size]
      if (i === 0 && inFs && clearRun(map, from0, want, size) >= want) return { g, start: from0, len: want }
      for (let b = findClear(map, from, to); b >= 0 && b < to; b = findClear(map, b, to)) {
        const start = roundUp(first + b, row) - first
        if (start + want > size || start >= to) break
        const len = clearRun(map, start, want, size)
        if (len >= want) return { g, start, len: want }
        b = start + Math.max(len, 1)
      }
    }
    return undefined
  }

  /** The bitmap of group g with its busy blocks shown as in use. */
  async #searchMap(h: MetaTxn, g: number): Promise<Buffer> {
    const { map } = await this.#maps.blockMap(h, g)
    const busy = this.#busy.ranges(g)
    if (busy.length === 0) return map
    const copy = Buffer.from(map)
    const first = groupFirstBlock(this.geometry, g)
    for (const [s, e] of busy) setBits(copy, s - first, e - first)
    return copy
  }

  async #take(h: MetaTxn, run: Run): Promise<void> {
    const geo = this.geometry
    const first = groupFirstBlock(geo, run.g)
    const start = first + run.start
    // Last line of defence against a bitmap that lies: never hand out metadata or a block past the end.
    if (start < geo.firstDataBlock || start + run.len > geo.blocksCount || this.#meta.overlaps(start, run.len)) {
      throw corrupt(`group ${run.g}: bitmap shows blocks ${start}+${run.len} free, but they hold file-system metadata or lie outside it`)
    }
    const map = await this.#maps.liveBlockMap(h, run.g)
    setBits(map, run.start, run.start + run.len)
    h.dirty(this.groups.group(run.g).blockBitmap)
    const s = this.groups.group(run.g)
    await this.groups.set(h, run.g, { freeBlocks: s.freeBlocks - run.len, blockBitmapCsum: this.#maps.csum(map, geo.blocksPerGroup) })
    await this.groups.syncSuperblock(h)
  }

  freeBlocks(h: MetaTxn, start: number, count: number, metadata: boolean): Promise<void> {
    return this.#serial(async () => {
      const geo = this.geometry
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || count < 1 || start < geo.firstDataBlock || start + count > geo.blocksCount) {
        throw corrupt(`freeing blocks ${start}+${count} outside the file system (${geo.firstDataBlock}..${geo.blocksCount - 1})`)
      }
      if (this.#meta.overlaps(start, count)) throw corrupt(`freeing blocks ${start}+${count}: they hold file-system metadata`)
      const pieces: Run[] = []
      for (let b = start; b < start + count; ) {
        const g = groupOfBlock(geo, b)
        const first = groupFirstBlock(geo, g)
        const len = Math.min(start + count, first + blocksInGroup(geo, g)) - b
        pieces.push({ g, start: b - first, len })
        b += len
      }
      // All checked before any is changed: a double free changes nothing.
      for (const p of pieces) {
        const { map } = await this.#maps.blockMap(h, p.g)
        if (!allSet(map, p.start, p.start + p.len)) throw corrupt(`freeing blocks ${start}+${count}: some in group ${p.g} are already free`)
      }
      for (const p of pieces) {
        const map = await this.#maps.liveBlockMap(h, p.g)
        clearBits(map, p.start, p.start + p.len)
        const s = this.groups.group(p.g)
        h.dirty(s.blockBitmap)
        await this.groups.set(h, p.g, { freeBlocks: s.freeBlocks + p.len, blockBitmapCsum: this.#maps.csum(map, geo.blocksPerGroup) })
        const abs = groupFirstBlock(geo, p.g) + p.start
        this.#busy.add(p.g, abs, abs + p.len)
        h.afterCommit(() => {
          this.#busy.remove(p.g, abs, abs + p.len)
        })
      }
      if (metadata) for (let b = start; b < start + count; b++) h.revoke(b)
      await this.groups.syncSuperblock(h)
    })
  }

  allocInode(h: MetaTxn, parentIno: number, isDir: boolean): Promise<number> {
    return this.#serial(async () => {
      const geo = this.geometry
      if (!Number.isSafeInteger(parentIno) || parentIno < 1 || parentIno > geo.inodesCount) throw new RangeError(`allocInode: parent ${parentIno}`)
      const gt = this.groups
      const g = chooseGroup(
        {
          groups: gt.groups,
          freeInodes: gt.freeInodes,
          freeBlocks: gt.freeBlocks,
          usedDirs: gt.usedDirs,
          inodesPerGroup: geo.inodesPerGroup,
          blocksPerGroup: geo.blocksPerGroup,
          usable: (g) => gt.group(g).freeBlocks - this.#busy.inGroup(g),
          random: this.#random,
        },
        Math.floor((parentIno - 1) / geo.inodesPerGroup),
        isDir,
        parentIno === ROOT_INO,
      )
      if (g === undefined) throw new VfsError('ENOSPC', `no free inodes (${gt.freeInodes} free)`)
      const map = await this.#maps.liveInodeMap(h, g)
      // Inodes below s_first_ino are the file system's own (root, journal, resize, ...); they may fill more than group 0.
      const i = findClear(map, Math.max(0, geo.firstIno - 1 - g * geo.inodesPerGroup), geo.inodesPerGroup)
      if (i < 0) throw corrupt(`group ${g}: descriptor counts ${gt.group(g).freeInodes} free inodes, its bitmap none`)
      setBits(map, i, i + 1)
      const s = gt.group(g)
      h.dirty(s.inodeBitmap)
      // bg_itable_unused counts the never-used slots at the end of the table; the lowest free bit is taken, so at most one moves in.
      const itableUnused = Math.min(s.itableUnused, geo.inodesPerGroup - i - 1)
      await gt.set(h, g, { freeInodes: s.freeInodes - 1, usedDirs: s.usedDirs + (isDir ? 1 : 0), itableUnused, inodeBitmapCsum: this.#maps.csum(map, geo.inodesPerGroup) })
      await gt.syncSuperblock(h)
      return g * geo.inodesPerGroup + i + 1
    })
  }

  freeInode(h: MetaTxn, ino: number, isDir: boolean): Promise<void> {
    return this.#serial(async () => {
      const geo = this.geometry
      if (!Number.isSafeInteger(ino) || ino < geo.firstIno || ino > geo.inodesCount) throw corrupt(`freeing inode ${ino}: outside ${geo.firstIno}..${geo.inodesCount}`)
      const g = Math.floor((ino - 1) / geo.inodesPerGroup)
      const i = (ino - 1) % geo.inodesPerGroup
      const s = this.groups.group(g)
      if ((s.flags & BG_INODE_UNINIT) !== 0) throw corrupt(`freeing inode ${ino}: group ${g} has none in use`)
      const map = await this.#maps.liveInodeMap(h, g)
      if (!testBit(map, i)) throw corrupt(`freeing inode ${ino}: already free`)
      if (isDir && s.usedDirs < 1) throw corrupt(`freeing directory inode ${ino}: group ${g} counts no directories`)
      clearBits(map, i, i + 1)
      h.dirty(s.inodeBitmap)
      await this.groups.set(h, g, { freeInodes: s.freeInodes + 1, usedDirs: s.usedDirs - (isDir ? 1 : 0), inodeBitmapCsum: this.#maps.csum(map, geo.inodesPerGroup) })
      await this.groups.syncSuperblock(h)
    })
  }
}
