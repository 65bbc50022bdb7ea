/*
 * One node of an inode's extent tree as the mutation code holds it: decoded entries it can splice,
 * and the buffer it came from, so writing it back is re-encoding the whole node (12-byte header,
 * eh_entries entries, zeros up to eh_max, and, outside the root, the crc32c tail that ties the
 * block to its inode). The root lives in the inode's i_block (60 bytes, room for 4 entries);
 * every other node fills one block (ifork.rst).
 */
import { crc32cUpdate } from '../crc32c.ts'
import { corrupt } from '../format/errors.ts'
import {
  decodeExtentHeader, decodeExtentNode, EXT4_MAX_EXTENT_DEPTH, EXT_INIT_MAX_LEN, EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE, EXTENT_MAGIC, encodeExtentHeader, extentTailOffset,
} from '../format/extent.ts'
import type { Extent, ExtentIndex } from '../format/extent.ts'
import { I_BLOCK_SIZE } from '../format/inode.ts'
import { inodeSeed } from '../reader/csum-verifier.ts'
import type { Allocator } from '../alloc/allocator.ts'
import type { Inode } from '../format/inode.ts'
import type { MetaTxn } from '../txn/txn.ts'

/** What every operation on one inode's tree needs to know about the file system and the inode. */
export interface TreeCtx {
  h: MetaTxn
  ino: number
  inode: Inode
  blockSize: number
  blocksCount: number
  /** The file system's checksum seed (csumSeed), or undefined without metadata_csum. */
  csumSeed: number | undefined
  /** The huge_file feature: i_blocks may use its high 16 bits, and count in blocks past 2^48 sectors. */
  hugeFile: boolean
  allocator: Allocator
}

/**
 * The decoded, checked node of each cached block buffer: a lookup decodes one node per level, and
 * a leaf of 340 entries costs more to decode and checksum than to search. Sound because every
 * change to a tree block's buffer is made by writeNode from the node it caches; the header and
 * checksum words are compared on each hit, so a buffer reused for something else is decoded
 * (and judged) again.
 */
const decoded = new WeakMap<Buffer, { node: TreeNode; stamp: string }>()

/** The words a hit must still find in the buffer: magic, entries, depth, and the checksum tail. */
function stampOf(buf: Buffer, max: number): string {
  const tail = EXTENT_HEADER_SIZE + max * EXTENT_ENTRY_SIZE
  return `${buf.readUInt32LE(0)}:${buf.readUInt16LE(6)}:${tail + 4 <= buf.length ? buf.readUInt32LE(tail) : 0}`
}

export interface TreeNode {
  /** 0 for the root in i_block, else the block holding the node. */
  block: number
  depth: number
  max: number
  generation: number
  /** Entries of an index node (depth > 0). */
  indexes: ExtentIndex[]
  /** Entries of a leaf (depth 0). */
  extents: Extent[]
  /** The entry the current path goes through. */
  idx: number
  /** The live buffer of a non-root node (from MetaTxn get or fresh). */
  buf: Buffer | undefined
}

/** eh_max of a root in i_block: (60 - 12) / 12. */
export const ROOT_MAX = (I_BLOCK_SIZE - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE

/** eh_max of a node filling a block (the kernel's ext4_ext_space_block: 340 for 4 KiB, 84 for 1 KiB); the 4-byte tail fits in the remainder. */
export function blockMax(blockSize: number): number {
  return Math.floor((blockSize - EXTENT_HEADER_SIZE - 4) / EXTENT_ENTRY_SIZE)
}

export function entryCount(n: TreeNode): number {
  return n.depth > 0 ? n.indexes.length : n.extents.length
}

/** First logical block the node covers (its first entry's key). */
export function firstKey(n: TreeNode): number | undefined {
  return n.depth > 0 ? n.indexes[0]?.block : n.extents[0]?.block
}

export function readRoot(c: TreeCtx): TreeNode {
  const n = decodeExtentNode(c.inode.block, I_BLOCK_SIZE, `inode ${c.ino} extent root`)
  if (n.header.depth > 0 && n.header.entries === 0) throw corrupt(`inode ${c.ino}: extent root at depth ${n.header.depth} has no entries`)
  return { block: 0, depth: n.header.depth, max: n.header.max, generation: n.header.generation, indexes: n.indexes, extents: n.extents, idx: 0, buf: undefined }
}

/** The child a parent's index points at, checked: inside the file system, one level down, its checksum right. */
export async function readChild(c: TreeCtx, parent: TreeNode, ix: ExtentIndex): Promise<TreeNode> {
  const where = `inode ${c.ino} extent block ${ix.leaf}`
  if (ix.leaf < 1 || ix.leaf >= c.blocksCount) throw corrupt(`inode ${c.ino}: extent index points at block ${ix.leaf} outside the file system`)
  const buf = await c.h.get(ix.leaf)
  const hit = decoded.get(buf)
  if (hit !== undefined && hit.node.block === ix.leaf && hit.stamp === stampOf(buf, hit.node.max)) {
    if (hit.node.depth !== parent.depth - 1) throw corrupt(`${where}: depth ${hit.node.depth} under depth ${parent.depth}`)
    return hit.node
  }
  // The checksum first, as the reader does: a flipped bit is reported as the damage it is.
  if (c.csumSeed !== undefined) {
    const header = decodeExtentHeader(buf)
    if (header.magic !== EXTENT_MAGIC) throw corrupt(`${where}: bad extent magic 0x${header.magic.toString(16)}`)
    const at = extentTailOffset(header)
    if (at + 4 > buf.length) throw corrupt(`${where}: eh_max ${header.max} leaves no room for the checksum`)
    const want = crc32cUpdate(inodeSeed(c.csumSeed, c.ino, c.inode.generation), buf.subarray(0, at))
    if (want !== buf.readUInt32LE(at)) throw corrupt(`${where}: checksum 0x${buf.readUInt32LE(at).toString(16)} on disk, computed 0x${want.toString(16)}`)
  }
  const n = decodeExtentNode(buf, c.blockSize, where)
  if (n.header.depth !== parent.depth - 1) throw corrupt(`${where}: depth ${n.header.depth} under depth ${parent.depth}`)
  if (n.header.entries === 0) throw corrupt(`${where}: empty node below the root`)
  for (const e of n.extents) {
    if (e.start < 1 || e.start + e.len > c.blocksCount) throw corrupt(`${where}: extent at logical ${e.block} maps blocks ${e.start}+${e.len} outside the file system`)
  }
  const node = { block: ix.leaf, depth: n.header.depth, max: n.header.max, generation: n.header.generation, indexes: n.indexes, extents: n.extents, idx: 0, buf }
  decoded.set(buf, { node, stamp: stampOf(buf, node.max) })
  return node
}

/** A new, empty non-root node in freshly allocated block `block`. */
export function freshNode(c: TreeCtx, block: number, depth: number): TreeNode {
  if (depth > EXT4_MAX_EXTENT_DEPTH) throw new RangeError(`extent depth ${depth}`)
  return { block, depth, max: blockMax(c.blockSize), generation: 0, indexes: [], extents: [], idx: 0, buf: c.h.fresh(block) }
}

/** Encode n into its home (i_block or its block), with the checksum tail outside the root, and mark it dirty. */
export function writeNode(c: TreeCtx, n: TreeNode): void {
  const count = entryCount(n)
  if (count > n.max) throw new RangeError(`extent node with ${count} entries over eh_max ${n.max}`)
  const out = n.block === 0 ? c.inode.block : n.buf
  if (out === undefined) throw new TypeError(`extent block ${n.block} written without its buffer`)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: count, max: n.max, depth: n.depth, generation: n.generation }).copy(out, 0)
  let at = EXTENT_HEADER_SIZE
  if (n.depth > 0) for (const ix of n.indexes) at = putIndex(out, at, ix)
  else for (const e of n.extents) at = putExtent(out, at, e)
  if (n.block === 0) {
    out.fill(0, at)
    return
  }
  const tail = extentTailOffset({ magic: EXTENT_MAGIC, entries: count, max: n.max, depth: n.depth, generation: n.generation })
  out.fill(0, at)
  if (c.csumSeed !== undefined) out.writeUInt32LE(crc32cUpdate(inodeSeed(c.csumSeed, c.ino, c.inode.generation), out.subarray(0, tail)), tail)
  decoded.set(out, { node: n, stamp: stampOf(out, n.max) })
  c.h.dirty(n.block)
}

/** Entries written in place (format/extent.ts's encoders, without a Buffer per entry). */
function putIndex(out: Buffer, at: number, ix: ExtentIndex): number {
  out.writeUInt32LE(ix.block, at)
  out.writeUInt32LE(ix.leaf % 2 ** 32, at + 4)
  out.writeUInt16LE(Math.floor(ix.leaf / 2 ** 32), at + 8)
  out.writeUInt16LE(0, at + 10)
  return at + EXTENT_ENTRY_SIZE
}

function putExtent(out: Buffer, at: number, e: Extent): number {
  out.writeUInt32LE(e.block, at)
  out.writeUInt16LE(e.uninit ? e.len + EXT_INIT_MAX_LEN : e.len, at + 4)
  out.writeUInt16LE(Math.floor(e.start / 2 ** 32), at + 6)
  out.writeUInt32LE(e.start % 2 ** 32, at + 8)
  return at + EXTENT_ENTRY_SIZE
}
