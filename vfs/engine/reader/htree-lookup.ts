/*
 * Lookup in a hashed (htree) directory, as the kernel's dx_probe and
 * ext4_dx_find_entry do (fs/ext4/namei.c; directory.rst): hash the name,
 * binary-search the dx_root and each dx_node level for the last entry whose
 * hash is <= the name's, and scan only the leaf block that leads to. When
 * the split that made the next leaf fell inside a run of equal hashes, that
 * leaf's starting hash carries bit 0 (the collision flag), and the search
 * continues into it. Cost: one block per level plus the leaf (plus any
 * collision leaves), never the whole directory.
 *
 * The walk is written against DxDir, a directory's logical blocks with their
 * checksums already checked, so the directory-mutation code (dir/) probes
 * the same way over its transaction's buffers.
 */
import { corrupt } from '../format/errors.ts'
import { DIR_ENTRY_HEADER, DIR_TAIL_FT, DIR_TAIL_SIZE, DX_HASH, DX_TAIL_SIZE, parseDirBlock, recLenFromDisk } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'
import { dxHash, effectiveHashVersion } from '../format/dx-hash.ts'
import type { DxHash } from '../format/dx-hash.ts'

/** Where count/limit sit: after dx_root_info in the root, after the fake entry in a node. */
export const DX_ROOT_COUNT_OFFSET = 0x20
export const DX_NODE_COUNT_OFFSET = 0x8
export const DX_ENTRY_SIZE = 8
/** dx_root_info: after "." (12 bytes) and the ".." header with its padded name (12 bytes). */
const DX_ROOT_INFO = 0x18

/** One indexed directory as the htree code reads it. */
export interface DxDir {
  ino: number
  blockSize: number
  /** The directory's size in blocks: every block number the index names must be below it. */
  blocks: number
  /** metadata_csum: leaves end in a dirent tail, index blocks in a dx_tail. */
  csum: boolean
  /** large_dir: a third index level is allowed. */
  largeDir: boolean
  /** s_hash_seed (16 bytes). */
  hashSeed: Buffer
  /** s_flags (which char signedness the hash uses). */
  sbFlags: number
  /** Logical block lblk, its checksum checked as `kind` (an index block or a leaf). */
  block(lblk: number, kind: 'dx-block' | 'dir-block'): Promise<Buffer>
}

/**
 * One level of the path from the root to a leaf. Entries are read from buf
 * in place (dxHashAt, dxBlockAt): a lookup touches log2(count) of them, and
 * decoding all 500 of a 4 KiB block per lookup would cost more than the rest.
 */
export interface DxFrame {
  /** Logical block of this index block (0 for the root). */
  lblk: number
  buf: Buffer
  /** Offset of count/limit in buf; entry i is at countOffset + 8i (entry 0's hash field is count/limit). */
  countOffset: number
  limit: number
  count: number
  /** Index of the entry followed. */
  at: number
}

export interface DxRootHeader {
  hashVersion: number
  indirectLevels: number
}

export interface DxPath {
  root: DxRootHeader
  /** The hash version names are hashed with (the root's, made unsigned when s_flags says). */
  hashVersion: number
  frames: DxFrame[]
  /** Logical block of the leaf the path ends in. */
  leaf: number
}

/** Entry i's hash (entry 0 has none: it stands for everything below entry 1). */
export function dxHashAt(f: DxFrame, i: number): number {
  return i === 0 ? 0 : f.buf.readUInt32LE(f.countOffset + i * DX_ENTRY_SIZE)
}

export function dxBlockAt(f: DxFrame, i: number): number {
  return f.buf.readUInt32LE(f.countOffset + i * DX_ENTRY_SIZE + 4)
}

/** How many dx entries fit in the root / in a node (one fewer with a dx_tail), as dx_root_limit / dx_node_limit. */
export function dxRootLimit(blockSize: number, csum: boolean): number {
  return (blockSize - DX_ROOT_COUNT_OFFSET) / DX_ENTRY_SIZE - (csum ? DX_TAIL_SIZE / DX_ENTRY_SIZE : 0)
}

export function dxNodeLimit(blockSize: number, csum: boolean): number {
  return (blockSize - DX_NODE_COUNT_OFFSET) / DX_ENTRY_SIZE - (csum ? DX_TAIL_SIZE / DX_ENTRY_SIZE : 0)
}

/** The root's hash version, checked, and the version names are hashed with. */
export function rootHashVersion(dir: DxDir, root: DxRootHeader): number {
  const v = root.hashVersion
  if (v !== DX_HASH.LEGACY && v !== DX_HASH.HALF_MD4 && v !== DX_HASH.TEA && v !== DX_HASH.SIPHASH) {
    throw corrupt(`directory ${dir.ino}: htree root hash version ${v}`)
  }
  return effectiveHashVersion(v, dir.sbFlags)
}

/** The hash of name in this directory. */
export function hashName(dir: DxDir, hashVersion: number, name: Uint8Array): DxHash {
  return dxHash(name, hashVersion, dir.hashSeed)
}

function checkChild(dir: DxDir, lblk: number, what: string): void {
  if (lblk < 1 || lblk >= dir.blocks) throw corrupt(`directory ${dir.ino}: htree ${what} points at block ${lblk} (directory has ${dir.blocks})`)
}

/** The last entry whose hash is <= hash. */
function search(f: DxFrame, hash: number): number {
  let lo = 1
  let hi = f.count - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (dxHashAt(f, mid) > hash) hi = mid - 1
    else lo = mid + 1
  }
  return lo - 1
}

/** count and limit at off, checked against the limit this kind of block must have. */
function frame(dir: DxDir, lblk: number, buf: Buffer, countOffset: number, want: number, where: string): DxFrame {
  if (buf.length < dir.blockSize) throw corrupt(`${where}: short block`)
  const limit = buf.readUInt16LE(countOffset)
  const count = buf.readUInt16LE(countOffset + 2)
  if (limit !== want) throw corrupt(`${where}: limit ${limit}, expected ${want}`)
  if (count === 0 || count > limit) throw corrupt(`${where}: htree count ${count} limit ${limit}`)
  return { lblk, buf, countOffset, limit, count, at: 0 }
}

/** Read and check the index node in logical block lblk. */
export async function readNode(dir: DxDir, lblk: number): Promise<DxFrame> {
  checkChild(dir, lblk, 'index')
  const buf = await dir.block(lblk, 'dx-block')
  const where = `directory ${dir.ino} htree node ${lblk}`
  if (buf.readUInt32LE(0) !== 0 || recLenFromDisk(buf.readUInt16LE(4), dir.blockSize) !== dir.blockSize) throw corrupt(`${where}: not an htree node`)
  return frame(dir, lblk, buf, DX_NODE_COUNT_OFFSET, dxNodeLimit(dir.blockSize, dir.csum), where)
}

/** The root block, decoded and checked as dx_probe does; hashVersion is the one names are hashed with. */
export async function readRoot(dir: DxDir): Promise<{ root: DxRootHeader; hashVersion: number; frame: DxFrame }> {
  const buf = await dir.block(0, 'dx-block')
  const where = `directory ${dir.ino} htree root`
  if (buf.length < dir.blockSize || dir.blockSize < DX_ROOT_COUNT_OFFSET + 8) throw corrupt(`${where}: short block`)
  const reservedZero = buf.readUInt32LE(DX_ROOT_INFO)
  const infoLength = buf.readUInt8(DX_ROOT_INFO + 5)
  if (reservedZero !== 0 || infoLength !== 8) throw corrupt(`${where}: not an htree root (info_length ${infoLength})`)
  const root = { hashVersion: buf.readUInt8(DX_ROOT_INFO + 4), indirectLevels: buf.readUInt8(DX_ROOT_INFO + 6) }
  const maxLevels = dir.largeDir ? 3 : 2
  if (root.indirectLevels >= maxLevels) throw corrupt(`${where}: htree indirect_levels ${root.indirectLevels} (at most ${maxLevels - 1})`)
  const hashVersion = rootHashVersion(dir, root)
  return { root, hashVersion, frame: frame(dir, 0, buf, DX_ROOT_COUNT_OFFSET, dxRootLimit(dir.blockSize, dir.csum), where) }
}

export type DxRootInfo = Awaited<ReturnType<typeof readRoot>>

/** dx_probe: the path from the root (read here unless given) to the leaf that holds hash. */
export async function dxProbe(dir: DxDir, hash: number, top?: DxRootInfo): Promise<DxPath> {
  const { root, hashVersion, frame } = top ?? (await readRoot(dir))
  frame.at = 0
  const frames = [frame]
  let cur = frame
  for (;;) {
    cur.at = search(cur, hash)
    const child = dxBlockAt(cur, cur.at)
    if (frames.length > root.indirectLevels) {
      checkChild(dir, child, 'leaf')
      return { root, hashVersion, frames, leaf: child }
    }
    cur = await readNode(dir, child)
    frames.push(cur)
  }
}

/**
 * ext4_htree_next_block: move path to the next leaf in hash order. With
 * `hash`, only when that leaf continues a run of names hashing to it (its
 * starting hash, bit 0 aside, equals hash). False when there is none.
 */
export async function dxNextLeaf(dir: DxDir, path: DxPath, hash?: number): Promise<boolean> {
  let level = path.frames.length - 1
  while (level >= 0) {
    const f = path.frames[level]
    if (f !== undefined && f.at + 1 < f.count) break
    level--
  }
  if (level < 0) return false
  const f = path.frames[level]
  if (f === undefined) return false
  f.at++
  const start = dxHashAt(f, f.at)
  if (hash !== undefined && (start & ~1) >>> 0 !== hash) return false
  // Down the leftmost entries of the levels below to the leaf.
  for (let l = level + 1; l < path.frames.length; l++) {
    const parent = path.frames[l - 1]
    path.frames[l] = await readNode(dir, parent === undefined ? 0 : dxBlockAt(parent, parent.at))
  }
  const last = path.frames[path.frames.length - 1]
  const leaf = last === undefined ? 0 : dxBlockAt(last, last.at)
  checkChild(dir, leaf, 'leaf')
  path.leaf = leaf
  return true
}

export interface HtreeHit {
  entry: DirEntry
  /** Logical block of the leaf holding it. */
  lblk: number
  path: DxPath
}

/** Find name in an indexed directory; undefined when it is not there. */
export async function htreeFind(dir: DxDir, name: Uint8Array): Promise<HtreeHit | undefined> {
  const top = await readRoot(dir)
  // "." and ".." live in the root block, before dx_root_info (as __ext4_find_entry reads them).
  if (isDotOrDotDot(name)) {
    const entry = parseDirBlock(top.frame.buf, dir.blockSize, `directory ${dir.ino} htree root`).entries.find((d) => Buffer.compare(d.name, name) === 0)
    return entry === undefined ? undefined : { entry, lblk: 0, path: { root: top.root, hashVersion: top.hashVersion, frames: [top.frame], leaf: 0 } }
  }
  const { major } = hashName(dir, top.hashVersion, name)
  const path = await dxProbe(dir, major, top)
  for (;;) {
    const buf = await dir.block(path.leaf, 'dir-block')
    const entry = findInBlock(buf, dir.blockSize, name, `directory ${dir.ino} block ${path.leaf}`)
    if (entry !== undefined) return { entry, lblk: path.leaf, path }
    if (!(await dxNextLeaf(dir, path, major))) return undefined
  }
}

function isDotOrDotDot(name: Uint8Array): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)
}

/**
 * Does buf hold name at offset at? A loop, not Buffer.compare: names are short and most
 * candidates differ in their first bytes, so the native call's fixed cost would dominate.
 */
export function sameBytes(buf: Buffer, at: number, name: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) if (buf[at + i] !== name[i]) return false
  return true
}

/**
 * The live entry called name in one directory block, compared in place;
 * records are checked as parseDirBlock checks them (a bad one is corrupt).
 */
export function findInBlock(buf: Buffer, blockSize: number, name: Uint8Array, where: string): DirEntry | undefined {
  let off = 0
  while (off < blockSize) {
    if (off + DIR_ENTRY_HEADER > blockSize) throw corrupt(`${where}: directory entry header at ${off} crosses the block end`)
    const inode = buf.readUInt32LE(off)
    const recLen = recLenFromDisk(buf.readUInt16LE(off + 4), blockSize)
    const nameLen = buf[off + 6] ?? 0
    const fileType = buf[off + 7] ?? 0
    if (inode === 0 && recLen === DIR_TAIL_SIZE && nameLen === 0 && fileType === DIR_TAIL_FT && off + DIR_TAIL_SIZE === blockSize) return undefined
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > blockSize) {
      throw corrupt(`${where}: bad directory entry at ${off} (rec_len ${recLen}, name_len ${nameLen})`)
    }
    if (inode !== 0 && nameLen === name.length && sameBytes(buf, off + DIR_ENTRY_HEADER, name)) {
      return { inode, recLen, fileType, name: Buffer.from(name), offset: off }
    }
    off += recLen
  }
  return undefined
}
