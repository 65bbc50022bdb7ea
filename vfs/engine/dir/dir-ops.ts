/*
 * Adding and removing directory entries through a transaction handle, as
 * ext4 does it (fs/ext4/namei.c). A linear directory takes a new name in the
 * first record with room, else in a new block at its end; when its single
 * block overflows on a dir_index file system it becomes hashed
 * (make_indexed_dir): block 0 turns into the dx_root and its names move to
 * block 1. A hashed directory takes a name in the leaf its hash picks; a full
 * leaf is split by hash (the upper half, by size, moves to a new block, and
 * the index gains an entry for it, flagged when the split fell inside a run
 * of equal hashes); a full index node is split the same way, and a full
 * root pushes its entries down into a new node, adding a level (two at
 * most, three with large_dir; beyond that ENOSPC). Directories never shrink,
 * as in ext4: a removed name's record joins the one before it.
 *
 * Every block changed is dirtied through the handle, and its checksum tail
 * (metadata_csum) recomputed before the operation ends.
 */
import { VfsError } from '../../errors.ts'
import { DIR_ENTRY_HEADER, EXT4_NAME_LEN, dirRecLen, parseDirBlock, recLenToDisk } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'
import { corrupt } from '../format/errors.ts'
import {
  DX_ENTRY_SIZE, DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET, dxBlockAt, dxHashAt, dxNextLeaf, dxNodeLimit, dxProbe, dxRootLimit, findInBlock, hashName, htreeFind, readRoot,
} from '../reader/htree-lookup.ts'
import type { DxDir, DxFrame, DxPath } from '../reader/htree-lookup.ts'
import type { MetaTxn } from '../txn/txn.ts'
import { composeLeaf, hasRoom, insertInBlock, removeFromBlock, setDxCsum, setLeafCsum } from './dir-block.ts'
import type { NewEntry } from './dir-block.ts'
import type { DirFile, DirFs } from './dir-file.ts'

/** dx_root_info: reserved_zero (4), hash_version, info_length, indirect_levels, unused_flags. */
const DX_ROOT_INFO = 0x18
const DX_ROOT_INDIRECT = DX_ROOT_INFO + 6

function checkName(name: Buffer): void {
  if (name.length > EXT4_NAME_LEN) throw new VfsError('ENAMETOOLONG', `name of ${name.length} bytes (at most ${EXT4_NAME_LEN})`)
  if (name.length === 0 || name.includes(0) || name.includes(0x2f)) throw new VfsError('EINVAL', `bad name ${JSON.stringify(name.toString('latin1'))}`)
  if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) throw new VfsError('EINVAL', `"${name.toString()}" is not an ordinary name`)
}

export class Directories {
  readonly fs: DirFs

  constructor(fs: DirFs) {
    this.fs = fs
  }

  /** The directory as the htree reader sees it, over the handle's live buffers. */
  dxDir(h: MetaTxn, dir: DirFile): DxDir {
    const fs = this.fs
    return {
      ino: dir.ino,
      blockSize: fs.blockSize,
      get blocks() {
        return dir.blockCount()
      },
      csum: fs.csumSeed !== undefined,
      largeDir: fs.largeDir,
      hashSeed: fs.hashSeed,
      sbFlags: fs.sbFlags,
      block: async (lblk) => h.get(await dir.physical(h, lblk)),
    }
  }

  /** The entry called name, or undefined. */
  async find(h: MetaTxn, dir: DirFile, name: Buffer): Promise<DirEntry | undefined> {
    if (this.#indexed(dir)) return (await htreeFind(this.dxDir(h, dir), name))?.entry
    for (let lblk = 0; lblk < dir.blockCount(); lblk++) {
      const buf = await h.get(await dir.physical(h, lblk))
      const hit = findInBlock(buf, this.fs.blockSize, name, `directory ${dir.ino} block ${lblk}`)
      if (hit !== undefined) return hit
    }
    return undefined
  }

  /** Add name → ino. EEXIST when the name is there, ENAMETOOLONG past 255 bytes, ENOSPC when the index is full. */
  async addEntry(h: MetaTxn, dir: DirFile, name: Buffer, ino: number, fileType: number): Promise<void> {
    checkName(name)
    const e: NewEntry = { inode: ino, fileType, name }
    if (this.#indexed(dir)) return this.#dxAdd(h, dir, e)
    const n = dir.blockCount()
    let fit: { buf: Buffer; pblk: number } | undefined
    for (let lblk = 0; lblk < n; lblk++) {
      const pblk = await dir.physical(h, lblk)
      const buf = await h.get(pblk)
      if (findInBlock(buf, this.fs.blockSize, name, `directory ${dir.ino} block ${lblk}`) !== undefined) throw exists(name)
      if (fit === undefined && hasRoom(buf, this.fs, name.length)) fit = { buf, pblk }
    }
    if (fit !== undefined) {
      insertInBlock(fit.buf, this.fs, e)
      this.#leafDone(h, dir, fit.buf, fit.pblk)
      return
    }
    if (n === 1 && this.fs.dirIndex) {
      await this.#makeIndexed(h, dir)
      return this.#dxAdd(h, dir, e)
    }
    const { pblk } = await dir.append(h)
    const buf = h.fresh(pblk)
    composeLeaf(buf, this.fs, [e])
    this.#leafDone(h, dir, buf, pblk)
  }

  /** Remove name; returns the inode it named. ENOENT when absent. */
  async removeEntry(h: MetaTxn, dir: DirFile, name: Buffer): Promise<number> {
    checkName(name)
    if (this.#indexed(dir)) {
      const hit = await htreeFind(this.dxDir(h, dir), name)
      if (hit !== undefined) {
        const pblk = await dir.physical(h, hit.lblk)
        const buf = await h.get(pblk)
        const ino = removeFromBlock(buf, this.fs, name)
        if (ino !== undefined) {
          this.#leafDone(h, dir, buf, pblk)
          return ino
        }
      }
      throw new VfsError('ENOENT', `${name.toString()}: not found`)
    }
    for (let lblk = 0; lblk < dir.blockCount(); lblk++) {
      const pblk = await dir.physical(h, lblk)
      const buf = await h.get(pblk)
      const ino = removeFromBlock(buf, this.fs, name)
      if (ino !== undefined) {
        this.#leafDone(h, dir, buf, pblk)
        return ino
      }
    }
    throw new VfsError('ENOENT', `${name.toString()}: not found`)
  }

  #indexed(dir: DirFile): boolean {
    return dir.isIndexed() && this.fs.dirIndex
  }

  #leafDone(h: MetaTxn, dir: DirFile, buf: Buffer, pblk: number): void {
    setLeafCsum(buf, this.fs, dir.ino, dir.generation)
    h.dirty(pblk)
  }

  async #dxDone(h: MetaTxn, dir: DirFile, f: DxFrame): Promise<void> {
    setDxCsum(f.buf, this.fs, dir.ino, dir.generation, f.countOffset)
    h.dirty(await dir.physical(h, f.lblk))
  }

  /** make_indexed_dir: block 0's names move to a new block 1, block 0 becomes the root with one entry pointing at it. */
  async #makeIndexed(h: MetaTxn, dir: DirFile): Promise<void> {
    const bs = this.fs.blockSize
    const p0 = await dir.physical(h, 0)
    const root = await h.get(p0)
    const all = parseDirBlock(root, bs, `directory ${dir.ino} block 0`).entries
    const [dot, dotdot] = all
    if (dot?.name.toString('latin1') !== '.' || dotdot?.name.toString('latin1') !== '..' || dot.offset !== 0) throw corrupt(`directory ${dir.ino}: block 0 does not start with "." and ".."`)
    const rest = all.slice(2).map((d) => ({ inode: d.inode, fileType: d.fileType, name: d.name }))
    const { lblk, pblk } = await dir.append(h)
    if (lblk !== 1) throw corrupt(`directory ${dir.ino}: grew to block ${lblk} from one block`)
    const leaf = h.fresh(pblk)
    composeLeaf(leaf, this.fs, rest)
    this.#leafDone(h, dir, leaf, pblk)
    // The root: "." (12 bytes), ".." spanning the rest of the block, then dx_root_info and the entries.
    const dotdotAt = dirRecLen(1)
    root.fill(0, dotdotAt + DIR_ENTRY_HEADER + 2)
    root.writeUInt16LE(recLenToDisk(dotdotAt, bs), 4)
    root.writeUInt32LE(dotdot.inode, dotdotAt)
    root.writeUInt16LE(recLenToDisk(bs - dotdotAt, bs), dotdotAt + 4)
    root.writeUInt8(2, dotdotAt + 6)
    root.writeUInt8(this.fs.fileType ? dotdot.fileType : 0, dotdotAt + 7)
    root.write('..', dotdotAt + DIR_ENTRY_HEADER, 'latin1')
    root.writeUInt32LE(0, DX_ROOT_INFO)
    root.writeUInt8(this.fs.defHashVersion, DX_ROOT_INFO + 4)
    root.writeUInt8(8, DX_ROOT_INFO + 5)
    root.writeUInt8(0, DX_ROOT_INDIRECT)
    root.writeUInt8(0, DX_ROOT_INFO + 7)
    root.writeUInt16LE(dxRootLimit(bs, this.fs.csumSeed !== undefined), DX_ROOT_COUNT_OFFSET)
    root.writeUInt16LE(1, DX_ROOT_COUNT_OFFSET + 2)
    root.writeUInt32LE(1, DX_ROOT_COUNT_OFFSET + 4)
    setDxCsum(root, this.fs, dir.ino, dir.generation, DX_ROOT_COUNT_OFFSET)
    h.dirty(p0)
    await dir.setIndexed(h)
  }

  async #dxAdd(h: MetaTxn, dir: DirFile, e: NewEntry): Promise<void> {
    const dx = this.dxDir(h, dir)
    // Each pass either inserts or makes the index roomier (a leaf split, a node split, a new level); then it probes again.
    for (let pass = 0; pass < 8; pass++) {
      const top = await readRoot(dx)
      const hash = hashName(dx, top.hashVersion, e.name)
      const path = await dxProbe(dx, hash.major, top)
      const leafP = await dir.physical(h, path.leaf)
      const leaf = await h.get(leafP)
      if (pass === 0) await checkAbsent(dx, path, leaf, e.name, hash.major)
      if (insertInBlock(leaf, this.fs, e)) {
        this.#leafDone(h, dir, leaf, leafP)
        return
      }
      const parent = path.frames[path.frames.length - 1]
      if (parent === undefined) throw corrupt(`directory ${dir.ino}: htree path without frames`)
      if (parent.count < parent.limit) {
        await this.#splitLeaf(h, dir, dx, path, parent, leaf, leafP, e, hash.major)
        return
      }
      await this.#growIndex(h, dir, path)
    }
    throw corrupt(`directory ${dir.ino}: no room made for a new entry`)
  }

  /** do_split: move the upper half (by size, in hash order) of a full leaf to a new block; then put e where its hash belongs. */
  async #splitLeaf(h: MetaTxn, dir: DirFile, dx: DxDir, path: DxPath, parent: DxFrame, leaf: Buffer, leafP: number, e: NewEntry, major: number): Promise<void> {
    const bs = this.fs.blockSize
    const live = parseDirBlock(leaf, bs, `directory ${dir.ino} block ${path.leaf}`).entries.map((d) => {
      const hh = hashName(dx, path.hashVersion, d.name)
      return { inode: d.inode, fileType: d.fileType, name: d.name, major: hh.major, minor: hh.minor, size: dirRecLen(d.name.length) }
    })
    live.sort((a, b) => a.major - b.major || a.minor - b.minor)
    let size = 0
    let move = 0
    let i = live.length - 1
    for (; i >= 0; i--) {
      const s = live[i]?.size ?? 0
      if (size + s / 2 > bs / 2) break
      size += s
      move++
    }
    const split = i > 0 ? live.length - move : live.length >>> 1
    const hash2 = live[split]?.major ?? 0
    const continued = split > 0 && live[split - 1]?.major === hash2 ? 1 : 0
    const { lblk: newL, pblk: newP } = await dir.append(h)
    const upper = h.fresh(newP)
    composeLeaf(upper, this.fs, live.slice(split))
    composeLeaf(leaf, this.fs, live.slice(0, split))
    dxInsert(parent, parent.at + 1, (hash2 | continued) >>> 0, newL)
    await this.#dxDone(h, dir, parent)
    const target = major >= hash2 ? upper : leaf
    if (!insertInBlock(target, this.fs, e)) throw corrupt(`directory ${dir.ino}: no room for a ${e.name.length}-byte name after a split`)
    this.#leafDone(h, dir, leaf, leafP)
    this.#leafDone(h, dir, upper, newP)
  }

  /**
   * The leaf's index block is full: split the topmost full index block on the
   * path into its parent, or, when every level up to the root is full, push
   * the root's entries down a level (ENOSPC when there are levels enough).
   */
  async #growIndex(h: MetaTxn, dir: DirFile, path: DxPath): Promise<void> {
    let k = path.frames.length - 1
    while (k > 0 && (path.frames[k - 1]?.count ?? 0) >= (path.frames[k - 1]?.limit ?? 0)) k--
    const csum = this.fs.csumSeed !== undefined
    const bs = this.fs.blockSize
    if (k === 0) {
      const maxLevels = this.fs.largeDir ? 3 : 2
      if (path.root.indirectLevels + 1 >= maxLevels) throw new VfsError('ENOSPC', `directory ${dir.ino}: htree index full (${maxLevels} levels)`)
      const root = path.frames[0]
      if (root === undefined) throw corrupt(`directory ${dir.ino}: htree path without a root`)
      const { lblk, pblk } = await dir.append(h)
      const node = newNode(h.fresh(pblk), bs, dxNodeLimit(bs, csum), lblk)
      copyEntries(root, 0, root.count, node)
      setCount(root, 1)
      root.buf.writeUInt32LE(lblk, root.countOffset + 4)
      root.buf.writeUInt8(path.root.indirectLevels + 1, DX_ROOT_INDIRECT)
      await this.#dxDone(h, dir, node)
      await this.#dxDone(h, dir, root)
      return
    }
    const full = path.frames[k]
    const parent = path.frames[k - 1]
    if (full === undefined || parent === undefined) throw corrupt(`directory ${dir.ino}: htree path too short`)
    const keep = full.count >>> 1
    const hash2 = dxHashAt(full, keep)
    const { lblk, pblk } = await dir.append(h)
    const node = newNode(h.fresh(pblk), bs, dxNodeLimit(bs, csum), lblk)
    copyEntries(full, keep, full.count, node)
    setCount(full, keep)
    dxInsert(parent, parent.at + 1, hash2, lblk)
    await this.#dxDone(h, dir, node)
    await this.#dxDone(h, dir, full)
    await this.#dxDone(h, dir, parent)
  }
}

/** EEXIST when name is in the leaf the probe chose or in a leaf continuing its hash (the kernel's lookup before add). */
async function checkAbsent(dx: DxDir, path: DxPath, leaf: Buffer, name: Buffer, major: number): Promise<void> {
  if (findInBlock(leaf, dx.blockSize, name, `directory ${dx.ino} block ${path.leaf}`) !== undefined) throw exists(name)
  const more: DxPath = { ...path, frames: path.frames.map((f) => ({ ...f })) }
  while (await dxNextLeaf(dx, more, major)) {
    if (findInBlock(await dx.block(more.leaf, 'dir-block'), dx.blockSize, name, `directory ${dx.ino} block ${more.leaf}`) !== undefined) throw exists(name)
  }
}

function exists(name: Buffer): VfsError {
  return new VfsError('EEXIST', `${name.toString()}: exists`)
}

function setCount(f: DxFrame, count: number): void {
  f.count = count
  f.buf.writeUInt16LE(count, f.countOffset + 2)
}

/** Insert (hash, block) at index `at` of f, shifting the entries after it up. */
function dxInsert(f: DxFrame, at: number, hash: number, block: number): void {
  if (f.count >= f.limit) throw corrupt(`htree block ${f.lblk}: insert into a full index`)
  const pos = f.countOffset + at * DX_ENTRY_SIZE
  f.buf.copy(f.buf, pos + DX_ENTRY_SIZE, pos, f.countOffset + f.count * DX_ENTRY_SIZE)
  f.buf.writeUInt32LE(hash, pos)
  f.buf.writeUInt32LE(block, pos + 4)
  setCount(f, f.count + 1)
}

/** An empty interior node: one empty record spanning the block, then limit/count. */
function newNode(buf: Buffer, bs: number, limit: number, lblk: number): DxFrame {
  buf.writeUInt16LE(recLenToDisk(bs, bs), 4)
  buf.writeUInt16LE(limit, DX_NODE_COUNT_OFFSET)
  return { lblk, buf, countOffset: DX_NODE_COUNT_OFFSET, limit, count: 0, at: 0 }
}

/** Copy entries [from, to) of src to the start of an empty dst; entry `from` becomes dst's entry 0 (whose hash is implied). */
function copyEntries(src: DxFrame, from: number, to: number, dst: DxFrame): void {
  for (let i = from; i < to; i++) {
    const j = i - from
    if (j > 0) dst.buf.writeUInt32LE(dxHashAt(src, i), dst.countOffset + j * DX_ENTRY_SIZE)
    dst.buf.writeUInt32LE(dxBlockAt(src, i), dst.countOffset + j * DX_ENTRY_SIZE + 4)
  }
  setCount(dst, to - from)
}
