/*
 * Extent trees (ifork.rst): a 12-byte header, then eh_entries entries of 12
 * bytes, index entries (pointing at the next level) when eh_depth > 0, leaf
 * extents when 0. The root lives in i_block (room for 4); other nodes fill a
 * block and end in a 4-byte checksum tail after eh_max entries.
 */
import { corrupt } from './errors.ts'

export const EXTENT_MAGIC = 0xf30a
export const EXTENT_HEADER_SIZE = 12
export const EXTENT_ENTRY_SIZE = 12
/** ee_len above this marks an uninitialized (unwritten) extent of ee_len - 32768 blocks. */
export const EXT_INIT_MAX_LEN = 32768
/** The kernel never builds deeper trees (ext4_extents.h, EXT4_MAX_EXTENT_DEPTH). */
export const EXT4_MAX_EXTENT_DEPTH = 5

export interface ExtentHeader {
  magic: number
  entries: number
  max: number
  depth: number
  generation: number
}

export interface ExtentIndex {
  /** First logical block this subtree covers. */
  block: number
  /** Physical block of the next-level node. */
  leaf: number
}

export interface Extent {
  /** First logical block. */
  block: number
  /** Number of blocks (1..32768). */
  len: number
  /** First physical block. */
  start: number
  /** Unwritten: allocated, reads as zeros. */
  uninit: boolean
}

export function decodeExtentHeader(buf: Buffer, offset = 0): ExtentHeader {
  return {
    magic: buf.readUInt16LE(offset),
    entries: buf.readUInt16LE(offset + 2),
    max: buf.readUInt16LE(offset + 4),
    depth: buf.readUInt16LE(offset + 6),
    generation: buf.readUInt32LE(offset + 8),
  }
}

export function encodeExtentHeader(h: ExtentHeader): Buffer {
  const out = Buffer.alloc(EXTENT_HEADER_SIZE)
  out.writeUInt16LE(h.magic, 0)
  out.writeUInt16LE(h.entries, 2)
  out.writeUInt16LE(h.max, 4)
  out.writeUInt16LE(h.depth, 6)
  out.writeUInt32LE(h.generation, 8)
  return out
}

export function decodeExtentIndex(buf: Buffer, offset: number): ExtentIndex {
  return { block: buf.readUInt32LE(offset), leaf: buf.readUInt32LE(offset + 4) + buf.readUInt16LE(offset + 8) * 2 ** 32 }
}

export function encodeExtentIndex(ix: ExtentIndex): Buffer {
  const out = Buffer.alloc(EXTENT_ENTRY_SIZE)
  out.writeUInt32LE(ix.block, 0)
  out.writeUInt32LE(ix.leaf % 2 ** 32, 4)
  out.writeUInt16LE(Math.floor(ix.leaf / 2 ** 32), 8)
  return out
}

export function decodeExtent(buf: Buffer, offset: number): Extent {
  const raw = buf.readUInt16LE(offset + 4)
  const uninit = raw > EXT_INIT_MAX_LEN
  return {
    block: buf.readUInt32LE(offset),
    len: uninit ? raw - EXT_INIT_MAX_LEN : raw,
    start: buf.readUInt32LE(offset + 8) + buf.readUInt16LE(offset + 6) * 2 ** 32,
    uninit,
  }
}

export function encodeExtent(e: Extent): Buffer {
  const out = Buffer.alloc(EXTENT_ENTRY_SIZE)
  out.writeUInt32LE(e.block, 0)
  out.writeUInt16LE(e.uninit ? e.len + EXT_INIT_MAX_LEN : e.len, 4)
  out.writeUInt16LE(Math.floor(e.start / 2 ** 32), 6)
  out.writeUInt32LE(e.start % 2 ** 32, 8)
  return out
}

/** One node of the tree, checked: magic, entries <= max, max fits the node (and leaves at most two entries unused). */
export interface ExtentNode {
  header: ExtentHeader
  /** depth > 0 */
  indexes: ExtentIndex[]
  /** depth === 0 */
  extents: Extent[]
}

/**
 * Decode a node of nodeSize bytes (60 for the root in i_block, the block
 * size otherwise), refusing what would make a walker misbehave: a wrong
 * magic, more entries than fit, a depth beyond the kernel's limit, or keys
 * that do not increase. where names the node in errors.
 */
export function decodeExtentNode(buf: Buffer, nodeSize: number, where: string): ExtentNode {
  if (buf.length < nodeSize || nodeSize < EXTENT_HEADER_SIZE) throw corrupt(`${where}: extent node shorter than its header`)
  const header = decodeExtentHeader(buf)
  if (header.magic !== EXTENT_MAGIC) throw corrupt(`${where}: bad extent magic 0x${header.magic.toString(16)}`)
  const room = Math.floor((nodeSize - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE)
  // As e2fsprogs' ext2fs_extent_header_verify, the judge of our images: eh_max within two entries of the
  // node's room (what mke2fs and the kernel write is the room itself), eh_entries at most eh_max.
  if (header.max > room || header.max < room - 2 || header.entries > header.max) throw corrupt(`${where}: extent header entries ${header.entries} max ${header.max} (room for ${room})`)
  if (header.depth > EXT4_MAX_EXTENT_DEPTH) throw corrupt(`${where}: extent depth ${header.depth}`)
  const indexes: ExtentIndex[] = []
  const extents: Extent[] = []
  let prevEnd = 0
  let prevKey = -1
  for (let i = 0; i < header.entries; i++) {
    const at = EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE
    if (header.depth > 0) {
      const ix = decodeExtentIndex(buf, at)
      if (ix.block <= prevKey) throw corrupt(`${where}: extent index keys out of order`)
      prevKey = ix.block
      indexes.push(ix)
    } else {
      const e = decodeExtent(buf, at)
      if (e.len === 0 || e.block < prevEnd || e.block + e.len > 2 ** 32) throw corrupt(`${where}: extent ${i} (block ${e.block} len ${e.len}) overlaps or is empty`)
      prevEnd = e.block + e.len
      extents.push(e)
    }
  }
  return { header, indexes, extents }
}

/** Offset of the checksum tail in a non-root node (after eh_max entries). */
export function extentTailOffset(header: ExtentHeader): number {
  return EXTENT_HEADER_SIZE + header.max * EXTENT_ENTRY_SIZE
}
