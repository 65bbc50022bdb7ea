/*
 * An inode's extent tree, changed through a metadata transaction (ifork.rst; behaviour after the
 * kernel's fs/ext4/extents.c). The Inode passed in is changed in memory — i_block (the root),
 * i_blocks (data and tree blocks), i_flags (EXTENTS, HUGE_FILE) — and the caller writes it; the
 * tree's other blocks are written through the handle, with their checksum tails.
 *
 * Operations on one inode must not overlap: the tree changes across awaits (block reads and
 * allocation), so the caller holds the inode's lock for the whole call, as the kernel holds
 * i_data_sem. Tree blocks an insertion may need are allocated before the tree changes, so ENOSPC
 * leaves it as it was. New nodes get eh_generation 0 (the kernel never sets it); existing ones
 * keep theirs.
 */
import { VfsError } from '../../errors.ts'
import type { Allocator } from '../alloc/allocator.ts'
import { EXTENT_MAGIC, encodeExtentHeader } from '../format/extent.ts'
import type { Extent } from '../format/extent.ts'
import { INODE_FLAGS } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import { convertToWritten } from './convert.ts'
import { addBlocks } from './i-blocks.ts'
import { insertExtent, maxLen } from './insert.ts'
import { ROOT_MAX } from './node.ts'
import type { TreeCtx } from './node.ts'
import { findPath } from './path.ts'
import { removeRange } from './remove.ts'

/** One past the last logical block a file may map (the kernel's EXT_MAX_BLOCKS = 2^32 - 1). */
export const EXT_MAX_BLOCKS = 2 ** 32 - 1

export interface ExtentTreeOptions {
  blockSize: number
  blocksCount: number
  /** csumSeed(sb) when the image has metadata_csum, else undefined. */
  csumSeed: number | undefined
  /** The huge_file feature (ro_compat). */
  hugeFile: boolean
  allocator: Allocator
}

/** Where a logical block lives: an extent holding it, or a hole up to holeEnd (exclusive, Infinity past the last extent). */
export type ExtentMapping = { extent: Extent; holeEnd?: undefined } | { extent?: undefined; holeEnd: number }

/** A piece of a mapped range: `fresh` blocks were allocated by this call, and hold garbage until written. */
export interface MappedRun {
  lblk: number
  start: number
  count: number
  fresh: boolean
  uninit: boolean
}

export interface MapOptions {
  /** Allocate holes as unwritten extents (fallocate): they read as zeros until written. */
  unwritten?: boolean
}

export class ExtentTree {
  readonly #o: ExtentTreeOptions

  constructor(options: ExtentTreeOptions) {
    this.#o = options
  }

  #ctx(h: MetaTxn, ino: number, inode: Inode): TreeCtx {
    if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) throw new VfsError('ENOTSUP', `inode ${ino} is not extent-mapped (flags 0x${inode.flags.toString(16)})`)
    return { h, ino, inode, blockSize: this.#o.blockSize, blocksCount: this.#o.blocksCount, csumSeed: this.#o.csumSeed, hugeFile: this.#o.hugeFile, allocator: this.#o.allocator }
  }

  /** Make inode extent-mapped with an empty tree (a new file, directory or slow symlink). */
  initRoot(inode: Inode): void {
    inode.block.fill(0)
    encodeExtentHeader({ magic: EXTENT_MAGIC, entries: 0, max: ROOT_MAX, depth: 0, generation: 0 }).copy(inode.block, 0)
    inode.flags |= INODE_FLAGS.EXTENTS
  }

  /** Map logical block lblk, reading through a transaction handle or (read-only) the manager's cache. */
  async lookup(src: MetaTxn | TxnManager, ino: number, inode: Inode, lblk: number): Promise<ExtentMapping> {
    checkRange(lblk, 1)
    const h = 'get' in src ? src : readOnly(src)
    const p = await findPath(this.#ctx(h, ino, inode), lblk)
    const leaf = p.nodes[p.nodes.length - 1]
    const e = leaf?.extents[leaf.idx]
    if (e !== undefined && lblk < e.block + e.len) return { extent: { ...e } }
    const next = leaf?.extents[(leaf.idx) + 1]
    return { holeEnd: Math.min(next?.block ?? Infinity, p.bound) }
  }

  /**
   * The blocks of [lblk, lblk + count), allocating every hole in it (near the extent before it,
   * else near goal) and inserting the new extents. Returns runs covering the range in order —
   * or, when space runs out part way, only the runs mapped so far (a short write: the fresh ones
   * among them are the caller's to fill before the transaction ends). ENOSPC is thrown only when
   * the first hole gets no block at all, and then the tree is as it was.
   */
  async mapOrAllocate(h: MetaTxn, ino: number, inode: Inode, lblk: number, count: number, goal: number, options: MapOptions = {}): Promise<MappedRun[]> {
    checkRange(lblk, count)
    const c = this.#ctx(h, ino, inode)
    const uninit = options.unwritten === true
    const runs: MappedRun[] = []
    const end = lblk + count
    let pos = lblk
    while (pos < end) {
      const p = await findPath(c, pos)
      const leaf = p.nodes[p.nodes.length - 1]
      const e = leaf?.extents[leaf.idx]
      if (e !== undefined && pos < e.block + e.len) {
        const n = Math.min(end, e.block + e.len) - pos
        runs.push({ lblk: pos, start: e.start + (pos - e.block), count: n, fresh: false, uninit: e.uninit })
        pos += n
        continue
      }
      const next = leaf?.extents[(leaf.idx) + 1]
      const want = Math.min(next?.block ?? Infinity, p.bound, end, pos + maxLen(uninit)) - pos
      // Continue the extent before the hole physically where it would be, as ext4_ext_find_goal does.
      const near = e !== undefined ? e.start + (pos - e.block) : goal
      let got: { start: number; count: number }
      try {
        got = await c.allocator.allocBlocks(h, near > 0 && near < c.blocksCount ? near : 0, want)
      } catch (err) {
        if (runs.length > 0 && isNoSpace(err)) break
        throw err
      }
      if (!Number.isSafeInteger(got.start) || got.count < 1 || got.count > want || got.start < 1 || got.start + got.count > c.blocksCount) {
        throw new RangeError(`allocator returned ${got.start}+${got.count} for ${want} blocks`)
      }
      try {
        addBlocks(inode, c.blockSize, c.hugeFile, got.count)
        try {
          // The path is still the one to pos: allocating changed bitmaps, not the tree.
          await insertExtent(c, { block: pos, len: got.count, start: got.start, uninit }, p)
        } catch (err) {
          addBlocks(inode, c.blockSize, c.hugeFile, -got.count)
          throw err
        }
      } catch (err) {
        await c.allocator.freeBlocks(h, got.start, got.count, false)
        if (runs.length > 0 && isNoSpace(err)) break
        throw err
      }
      runs.push({ lblk: pos, start: got.start, count: got.count, fresh: true, uninit })
      pos += got.count
    }
    return runs
  }

  /**
   * The unwritten extents in [lblk, lblk + count) become written: call after writing their data
   * (before the transaction ends), or the file reads zeros there. Holes and written extents in
   * the range are left alone. ENOSPC (a split needing a tree block) leaves the range unwritten.
   */
  async markWritten(h: MetaTxn, ino: number, inode: Inode, lblk: number, count: number): Promise<void> {
    checkRange(lblk, count)
    if (count === 0) return
    await convertToWritten(this.#ctx(h, ino, inode), lblk, lblk + count)
  }

  /** Free every block mapped at or after fromLblk (i_size is the caller's). */
  async truncate(h: MetaTxn, ino: number, inode: Inode, fromLblk: number): Promise<void> {
    checkRange(fromLblk, 0)
    await removeRange(this.#ctx(h, ino, inode), fromLblk, EXT_MAX_BLOCKS)
  }

  /** Free the blocks mapped in [lblk, lblk + count), leaving a hole. */
  async punch(h: MetaTxn, ino: number, inode: Inode, lblk: number, count: number): Promise<void> {
    checkRange(lblk, count)
    if (count === 0) return
    await removeRange(this.#ctx(h, ino, inode), lblk, lblk + count)
  }
}

function isNoSpace(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === 'ENOSPC'
}

function checkRange(lblk: number, count: number): void {
  if (!Number.isSafeInteger(lblk) || !Number.isSafeInteger(count) || lblk < 0 || count < 0) throw new RangeError(`bad logical range ${lblk}+${count}`)
  if (lblk + count > EXT_MAX_BLOCKS) throw new VfsError('EFBIG', `logical blocks ${lblk}+${count} past the largest extent-mapped offset (block ${EXT_MAX_BLOCKS - 1})`)
}

/** A handle that only reads: lookups never change the tree. */
function readOnly(tm: TxnManager): MetaTxn {
  const refuse = (): never => {
    throw new TypeError('extent lookup tried to change the tree')
  }
  return { tid: 0, get: (b) => tm.read(b), fresh: refuse, dirty: refuse, revoke: refuse, afterCommit: refuse }
}
