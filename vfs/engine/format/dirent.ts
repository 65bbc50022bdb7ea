/*
 * Directory blocks (directory.rst): a chain of ext4_dir_entry_2 records
 * (inode, rec_len, name_len, file_type, name) that covers the block exactly;
 * with metadata_csum the last 12 bytes are a fake entry holding the block's
 * crc32c. Hashed directories (dir_index) keep their tree in blocks that also
 * parse as entry chains: the dx_root is block 0 ("." and a ".." whose rec_len
 * spans the rest), and each dx_node is one empty entry spanning its block,
 * so a linear scan of all blocks sees exactly the names.
 */
import { corrupt } from './errors.ts'

/** ext4_dir_entry_2.file_type values (with the filetype feature). */
export const FT = { UNKNOWN: 0, REG_FILE: 1, DIR: 2, CHRDEV: 3, BLKDEV: 4, FIFO: 5, SOCK: 6, SYMLINK: 7 } as const
/** file_type of the checksum tail (ext4_dir_entry_tail.det_reserved_ft). */
export const DIR_TAIL_FT = 0xde
export const DIR_TAIL_SIZE = 12
export const DIR_ENTRY_HEADER = 8
export const EXT4_NAME_LEN = 255

export interface DirEntry {
  inode: number
  /** Bytes this record spans, the gap after the name included. */
  recLen: number
  fileType: number
  /** Raw name bytes: ext4 names are bytes, not necessarily UTF-8. */
  name: Buffer
  /** Offset of the record in its block. */
  offset: number
}

export interface DirBlock {
  /** Live entries (inode != 0), in block order. */
  entries: DirEntry[]
  /** The checksum tail's det_checksum, when the block ends in one. */
  tailChecksum: number | undefined
}

/** ext4_rec_len_from_disk: 64 KiB blocks spell their full length as 65535 or 0, and keep bits 16-17 in the low two. */
export function recLenFromDisk(dlen: number, blockSize: number): number {
  if (blockSize >= 65536 && (dlen === 65535 || dlen === 0)) return blockSize
  return (dlen & 65532) | ((dlen & 3) << 16)
}

export function recLenToDisk(len: number, blockSize: number): number {
  if (blockSize >= 65536 && len === blockSize) return 65535
  return (len & 65532) | ((len >> 16) & 3)
}

/** The smallest record that holds a name of nameLen bytes: header + name, rounded up to 4. */
export function dirRecLen(nameLen: number): number {
  return (DIR_ENTRY_HEADER + nameLen + 3) & ~3
}

/**
 * Parse one directory block, checking each record as the kernel's
 * __ext4_check_dir_entry does (rec_len at least 12, a multiple of 4, holding
 * its name, inside the block). where names the block in errors. Each name is
 * a copy, unless copyNames is false: then names are views of buf, for a
 * caller whose buf is a private copy never written again (reader/leaf-cache.ts).
 */
export function parseDirBlock(buf: Buffer, blockSize: number, where: string, copyNames = true): DirBlock {
  if (buf.length < blockSize) throw corrupt(`${where}: short directory block`)
  const entries: DirEntry[] = []
  let tailChecksum: number | undefined
  let off = 0
  while (off < blockSize) {
    if (off + DIR_ENTRY_HEADER > blockSize) throw corrupt(`${where}: directory entry header at ${off} crosses the block end`)
    const inode = buf.readUInt32LE(off)
    const recLen = recLenFromDisk(buf.readUInt16LE(off + 4), blockSize)
    const nameLen = buf.readUInt8(off + 6)
    const fileType = buf.readUInt8(off + 7)
    if (inode === 0 && recLen === DIR_TAIL_SIZE && nameLen === 0 && fileType === DIR_TAIL_FT && off + DIR_TAIL_SIZE === blockSize) {
      tailChecksum = buf.readUInt32LE(off + 8)
      break
    }
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > blockSize) {
      throw corrupt(`${where}: bad directory entry at ${off} (rec_len ${recLen}, name_len ${nameLen})`)
    }
    if (inode !== 0) {
      if (nameLen === 0) throw corrupt(`${where}: directory entry at ${off} has an empty name`)
      const name = buf.subarray(off + DIR_ENTRY_HEADER, off + DIR_ENTRY_HEADER + nameLen)
      entries.push({ inode, recLen, fileType, name: copyNames ? Buffer.from(name) : name, offset: off })
    }
    off += recLen
  }
  return { entries, tailChecksum }
}

/** Encode one record (rec_len as given; the gap after the name is zero). */
export function encodeDirEntry(e: { inode: number; recLen: number; fileType: number; name: Buffer }, blockSize: number): Buffer {
  if (e.name.length > EXT4_NAME_LEN || e.recLen < dirRecLen(e.name.length)) throw new RangeError('directory entry does not fit its rec_len')
  const out = Buffer.alloc(e.recLen)
  out.writeUInt32LE(e.inode, 0)
  out.writeUInt16LE(recLenToDisk(e.recLen, blockSize), 4)
  out.writeUInt8(e.name.length, 6)
  out.writeUInt8(e.fileType, 7)
  e.name.copy(out, DIR_ENTRY_HEADER)
  return out
}

export function encodeDirTail(checksum: number): Buffer {
  const out = Buffer.alloc(DIR_TAIL_SIZE)
  out.writeUInt16LE(DIR_TAIL_SIZE, 4)
  out.writeUInt8(DIR_TAIL_FT, 7)
  out.writeUInt32LE(checksum, 8)
  return out
}

/** htree hash versions (s_def_hash_version, dx_root_info.hash_version). */
export const DX_HASH = { LEGACY: 0, HALF_MD4: 1, TEA: 2, LEGACY_UNSIGNED: 3, HALF_MD4_UNSIGNED: 4, TEA_UNSIGNED: 5, SIPHASH: 6 } as const

export interface DxEntry {
  /** Lowest hash in the subtree (0 for the first entry, which stores none). */
  hash: number
  /** Logical block of the child within the directory. */
  block: number
}

export interface DxRoot {
  hashVersion: number
  indirectLevels: number
  unusedFlags: number
  limit: number
  entries: DxEntry[]
}

export interface DxNode {
  limit: number
  entries: DxEntry[]
}

/** The dx_root_info sits after "." (12 bytes) and the ".." header + name (12 bytes). */
const DX_ROOT_INFO = 0x18
const DX_ROOT_COUNTLIMIT = 0x20
const DX_NODE_COUNTLIMIT = 0x8
/** dx_tail (reserved, checksum) after limit entries, with metadata_csum. */
export const DX_TAIL_SIZE = 8

function dxEntries(buf: Buffer, at: number, blockSize: number, where: string): { limit: number; entries: DxEntry[] } {
  const limit = buf.readUInt16LE(at)
  const count = buf.readUInt16LE(at + 2)
  if (count === 0 || count > limit || at + limit * 8 > blockSize) throw corrupt(`${where}: htree count ${count} limit ${limit}`)
  const entries: DxEntry[] = [{ hash: 0, block: buf.readUInt32LE(at + 4) }]
  for (let i = 1; i < count; i++) entries.push({ hash: buf.readUInt32LE(at + i * 8), block: buf.readUInt32LE(at + i * 8 + 4) })
  return { limit, entries }
}

/** Decode the htree root in block 0 of an indexed directory (largeDir: a third level allowed). */
export function decodeDxRoot(buf: Buffer, blockSize: number, largeDir: boolean, where: string): DxRoot {
  if (buf.length < blockSize || blockSize < DX_ROOT_COUNTLIMIT + 8) throw corrupt(`${where}: short htree root`)
  const reservedZero = buf.readUInt32LE(DX_ROOT_INFO)
  const hashVersion = buf.readUInt8(DX_ROOT_INFO + 4)
  const infoLength = buf.readUInt8(DX_ROOT_INFO + 5)
  const indirectLevels = buf.readUInt8(DX_ROOT_INFO + 6)
  const unusedFlags = buf.readUInt8(DX_ROOT_INFO + 7)
  if (reservedZero !== 0 || infoLength !== 8) throw corrupt(`${where}: not an htree root (info_length ${infoLength})`)
  if (indirectLevels >= (largeDir ? 3 : 2)) throw corrupt(`${where}: htree indirect_levels ${indirectLevels}`)
  const { limit, entries } = dxEntries(buf, DX_ROOT_COUNTLIMIT, blockSize, where)
  return { hashVersion, indirectLevels, unusedFlags, limit, entries }
}

/** Decode an interior htree node: a fake empty entry spanning the block, then count/limit. */
export function decodeDxNode(buf: Buffer, blockSize: number, where: string): DxNode {
  if (buf.length < blockSize) throw corrupt(`${where}: short htree node`)
  if (buf.readUInt32LE(0) !== 0 || recLenFromDisk(buf.readUInt16LE(4), blockSize) !== blockSize) throw corrupt(`${where}: not an htree node`)
  return dxEntries(buf, DX_NODE_COUNTLIMIT, blockSize, where)
}
