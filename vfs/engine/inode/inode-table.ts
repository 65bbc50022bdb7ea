/*
 * Inodes by number, read and written through the transaction layer (inodes.rst: inode ino lives
 * in group (ino-1)/s_inodes_per_group, slot (ino-1)%s_inodes_per_group of that group's table).
 * A write encodes into the live table block, keeping the bytes no field covers, and recomputes the
 * checksum (crc32c of the fs seed, inode number, generation and record); a read checks it. Decoded
 * inodes are cached by number; callers get copies, so they cannot change the cache behind a write.
 */
import { testBit } from '../alloc/bitmap.ts'
import { FormatError, corrupt } from '../format/errors.ts'
import { hasFeature } from '../format/features.ts'
import { decodeInode, encodeInode, GOOD_OLD_INODE_SIZE, INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET, ownCopy } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import { inodeCsum } from '../reader/csum-verifier.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import type { Geometry } from '../alloc/geometry.ts'
import type { GroupTable } from '../alloc/group-table.ts'
import type { Attr, FileRef } from '../../types.ts'
import { TwoGenerationCache } from './two-generation-cache.ts'

/**
 * A cached decoded inode with what readers derive from it: its VFS attributes and handle, made
 * the first time a reader asks (fs/engine-core.ts viewAttr, viewRef). The inode is never changed
 * in place (put caches a new slot), so what is derived holds for exactly as long as the slot is
 * cached. One object per cached inode: a listing finds an entry's inode, attributes and handle
 * with one Map lookup, where WeakMaps keyed by the inode took two more hash probes per entry.
 */
export interface InodeSlot {
  readonly inode: Readonly<Inode>
  /**
   * In use (links and a mode), as the inode says: kept here so a listing that finds the attributes
   * made does not touch the inode object itself (a cache miss per entry, most of a warm listing's
   * time per entry in a profile).
   */
  readonly live: boolean
  attr: Attr | undefined
  ref: FileRef | undefined
}

function slotOf(inode: Inode): InodeSlot {
  return { inode, live: inode.linksCount !== 0 && inode.mode !== 0, attr: undefined, ref: undefined }
}

export interface InodeTableOptions {
  /** Decoded inodes kept (least recently used dropped first). */
  cacheSize?: number
}

const DEFAULT_CACHE = 4096
/** i_extra_isize: it decides whether the record holds i_checksum_hi. */
const EXTRA_ISIZE_OFFSET = 0x80

/**
 * A deep copy, field by field: every copy gets one object shape whatever built the original
 * (a spread copied each source's shape, and the engine's code then met many: profiles showed
 * microseconds per copy where this takes a fraction of one). `kept`: the copy goes into the cache,
 * so its i_block gets memory of its own (see ownCopy); a caller's short-lived copy takes a slice
 * of Node's pool, which is cheaper.
 */
export function copyInode(i: Inode, kept = false): Inode {
  return {
    mode: i.mode,
    uid: i.uid,
    gid: i.gid,
    size: i.size,
    atime: { sec: i.atime.sec, nsec: i.atime.nsec },
    ctime: { sec: i.ctime.sec, nsec: i.ctime.nsec },
    mtime: { sec: i.mtime.sec, nsec: i.mtime.nsec },
    crtime: i.crtime === undefined ? undefined : { sec: i.crtime.sec, nsec: i.crtime.nsec },
    dtime: i.dtime,
    linksCount: i.linksCount,
    blocks: i.blocks,
    flags: i.flags,
    version: i.version,
    generation: i.generation,
    fileAcl: i.fileAcl,
    block: kept ? ownCopy(i.block) : Buffer.copyBytesFrom(i.block),
    extraIsize: i.extraIsize,
    checksumLo: i.checksumLo,
    checksumHi: i.checksumHi,
    projid: i.projid,
  }
}

/** Store inode ino's checksum in its encoded record raw (both halves when i_extra_isize covers the high one). */
export function setInodeCsum(raw: Buffer, seed: number, ino: number, generation: number): void {
  const sum = inodeCsum(seed, ino, generation, raw)
  raw.writeUInt16LE(sum & 0xffff, INODE_CHECKSUM_LO_OFFSET)
  if (raw.length > GOOD_OLD_INODE_SIZE && raw.readUInt16LE(EXTRA_ISIZE_OFFSET) >= 4) raw.writeUInt16LE(sum >>> 16, INODE_CHECKSUM_HI_OFFSET)
}

export class InodeTable {
  readonly #txm: TxnManager
  readonly #geo: Geometry
  readonly #groups: GroupTable
  readonly #hugeFile: boolean
  readonly #cache: TwoGenerationCache<number, InodeSlot>
  /** Decoded inodes kept at most. */
  readonly cacheCapacity: number

  constructor(txm: TxnManager, groups: GroupTable, options: InodeTableOptions = {}) {
    this.#txm = txm
    this.#geo = groups.geo
    this.#groups = groups
    this.#hugeFile = hasFeature(groups.geo.sb, 'ro_compat', 'huge_file')
    this.cacheCapacity = Math.max(1, options.cacheSize ?? DEFAULT_CACHE)
    this.#cache = new TwoGenerationCache(this.cacheCapacity)
  }

  /** The table block holding inode ino and the record's offset in it. */
  locate(ino: number): { block: number; offset: number } {
    const geo = this.#geo
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > geo.inodesCount) throw corrupt(`inode ${ino} outside 1..${geo.inodesCount}`)
    const g = Math.floor((ino - 1) / geo.inodesPerGroup)
    const byte = ((ino - 1) % geo.inodesPerGroup) * geo.inodeSize
    return { block: this.#groups.group(g).inodeTable + Math.floor(byte / geo.blockSize), offset: byte % geo.blockSize }
  }

  /** Inode ino, through h when given (to see this transaction's changes), else through the manager. */
  async get(ino: number, h?: MetaTxn): Promise<Inode> {
    return copyInode((await this.#load(ino, h)).inode)
  }

  /**
   * Inode ino as cached, not copied: for readers that only look (getattr, lookup, readdir), which
   * would otherwise copy every inode they visit. Never change it; a later put replaces the cached
   * object rather than changing this one, so a reader holding it keeps a consistent snapshot.
   */
  async peek(ino: number): Promise<Readonly<Inode>> {
    return (await this.#load(ino)).inode
  }

  /** peek() without the promise when the inode is cached (a listing visits hundreds per call); else undefined. */
  cached(ino: number): Readonly<Inode> | undefined {
    return this.#cache.get(ino)?.inode
  }

  /** The cached slot of inode ino (its inode and what readers derived from it), at once; undefined if not cached. */
  cachedSlot(ino: number): InodeSlot | undefined {
    return this.#cache.get(ino)
  }

  /** The slot of inode ino, read and decoded if not cached (for readers that only look, as peek). */
  async slot(ino: number): Promise<InodeSlot> {
    return this.#load(ino)
  }

  /**
   * Bring the inode table blocks of `inos` (those not cached) into the block cache, all reads at
   * once: a listing's page of uncached inodes (after a restart) otherwise read its dozen or so
   * table blocks one after another, an await each. Numbers out of range, and blocks that fail to
   * read, are left to the reads that follow, which refuse them.
   */
  async prefetch(inos: readonly number[]): Promise<void> {
    const geo = this.#geo
    const blocks = new Set<number>()
    for (const ino of inos) {
      if (!Number.isSafeInteger(ino) || ino < 1 || ino > geo.inodesCount || this.#cache.get(ino) !== undefined) continue
      blocks.add(this.locate(ino).block)
    }
    // Settled, not all: a block that fails to read is left to the inode's own read that follows,
    // which a listing answers as before (that entry without attributes), not the whole page failed.
    await Promise.allSettled([...blocks].map((b) => this.#txm.read(b)))
  }

  async #load(ino: number, h?: MetaTxn): Promise<InodeSlot> {
    const hit = this.#cache.get(ino)
    if (hit !== undefined) return hit
    const { block, offset } = this.locate(ino)
    const buf = h !== undefined ? await h.get(block) : await this.#txm.read(block)
    const raw = buf.subarray(offset, offset + this.#geo.inodeSize)
    this.#verify(ino, block, raw)
    let inode: Inode
    try {
      inode = decodeInode(raw, 0, this.#geo.inodeSize, this.#hugeFile)
    } catch (err) {
      throw corrupt(`inode ${ino}: ${err instanceof Error ? err.message : String(err)}`)
    }
    const slot = slotOf(inode)
    this.#cache.set(ino, slot)
    return slot
  }

  /**
   * Write inode as inode ino. fresh: the slot held no live inode (a new one): its record is zeroed
   * first, since a slot never used may hold anything (an inode table mkfs did not zero).
   */
  async put(h: MetaTxn, ino: number, inode: Inode, fresh = false): Promise<void> {
    const { block, offset } = this.locate(ino)
    const size = this.#geo.inodeSize
    const buf = fresh && await this.#aloneInBlock(h, ino, block) ? h.fresh(block) : await h.get(block)
    const raw = buf.subarray(offset, offset + size)
    if (fresh) raw.fill(0)
    encodeInode(inode, raw, 0, size, this.#hugeFile)
    if (this.#groups.metadataCsum) setInodeCsum(raw, this.#groups.seed, ino, inode.generation)
    h.dirty(block)
    this.#cache.set(ino, slotOf(copyInode(inode, true)))
  }

  /**
   * A new inode whose table block is not in memory and whose block holds no other inode in use
   * (the inode bitmap, which allocating ino has just loaded through h): the block can be started
   * from zeros rather than read, as ext4's __ext4_get_inode_loc does for a new inode. Creating
   * files in a fresh table then reads no table block at all: such a read ran under the engine's
   * lock, every other change waiting behind it (one every 16 creates with 256-byte inodes).
   */
  async #aloneInBlock(h: MetaTxn, ino: number, block: number): Promise<boolean> {
    if (h.inMemory === undefined || h.inMemory(block)) return false
    const geo = this.#geo
    const g = Math.floor((ino - 1) / geo.inodesPerGroup)
    const perBlock = geo.blockSize / geo.inodeSize
    const first = Math.floor(((ino - 1) % geo.inodesPerGroup) / perBlock) * perBlock
    const map = await h.get(this.#groups.group(g).inodeBitmap)
    for (let i = first; i < first + perBlock; i++) {
      if (i !== (ino - 1) % geo.inodesPerGroup && testBit(map, i)) return false
    }
    // Checked again after the await: nothing else may have brought the block in meanwhile.
    return !h.inMemory(block)
  }

  /** Decoded inodes cached now. */
  get cacheSize(): number {
    return this.#cache.size
  }

  /**
   * Keep at most `keep` decoded inodes (the server is idle). Safe at any time: a decoded inode is
   * only a copy of its record in the live table block, which every put() writes first, so a
   * dropped one is decoded again from that block; readers holding one keep their snapshot.
   * Returns the inodes dropped.
   */
  trimCache(keep: number): number {
    return this.#cache.trim(keep)
  }

  /** Drop ino from the cache (its table block was replaced, e.g. by journal replay). */
  forget(ino: number): void {
    this.#cache.delete(ino)
  }

  #verify(ino: number, block: number, raw: Buffer): void {
    if (!this.#groups.metadataCsum) return
    // A slot never written (zeros in a lazily initialised table) carries no checksum; e2fsprogs accepts it too.
    if (raw.every((x) => x === 0)) return
    const generation = raw.readUInt32LE(0x64)
    const want = inodeCsum(this.#groups.seed, ino, generation, raw)
    const lo = raw.readUInt16LE(INODE_CHECKSUM_LO_OFFSET)
    const hiExists = raw.length > GOOD_OLD_INODE_SIZE && raw.readUInt16LE(EXTRA_ISIZE_OFFSET) >= 4
    const have = hiExists ? (lo | (raw.readUInt16LE(INODE_CHECKSUM_HI_OFFSET) << 16)) >>> 0 : lo
    if (want !== have) throw new FormatError('EXT4_BAD_CHECKSUM', `inode ${ino} in block ${block}: checksum 0x${have.toString(16)} on disk, computed 0x${want.toString(16)}`)
  }
}
