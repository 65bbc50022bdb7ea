/*
 * Block group descriptors (group_descr.rst): 32 bytes, or s_desc_size (64)
 * with the 64bit feature, whose second half holds the high words. The table
 * starts in the block after the superblock (block 1, or block 2 with 1 KiB
 * blocks, whose superblock is block 1); meta_bg, which scatters it, is not read.
 */
import { decodeFields, encodeFields } from './fields.ts'
import type { FieldTable } from './fields.ts'

export const BG_INODE_UNINIT = 0x1
export const BG_BLOCK_UNINIT = 0x2
export const BG_INODE_ZEROED = 0x4
/** bg_checksum: crc16 (gdt_csum) or the low 16 bits of crc32c (metadata_csum) of the descriptor. */
export const GROUP_DESC_CHECKSUM_OFFSET = 0x1e

export interface GroupDesc {
  blockBitmap: number
  inodeBitmap: number
  inodeTable: number
  freeBlocksCount: number
  freeInodesCount: number
  usedDirsCount: number
  flags: number
  excludeBitmap: number
  blockBitmapCsum: number
  inodeBitmapCsum: number
  itableUnused: number
  checksum: number
}

const LO: FieldTable = [
  ['blockBitmap', 0x0, 'u32'],
  ['inodeBitmap', 0x4, 'u32'],
  ['inodeTable', 0x8, 'u32'],
  ['freeBlocksCount', 0xc, 'u16'],
  ['freeInodesCount', 0xe, 'u16'],
  ['usedDirsCount', 0x10, 'u16'],
  ['flags', 0x12, 'u16'],
  ['excludeBitmap', 0x14, 'u32'],
  ['blockBitmapCsum', 0x18, 'u16'],
  ['inodeBitmapCsum', 0x1a, 'u16'],
  ['itableUnused', 0x1c, 'u16'],
  ['checksum', 0x1e, 'u16'],
]

/** The high halves (64-byte form): each adds to the field of the same name in LO, shifted. */
const HI: ReadonlyArray<readonly [keyof GroupDesc, number, 'u16' | 'u32', number]> = [
  ['blockBitmap', 0x20, 'u32', 2 ** 32],
  ['inodeBitmap', 0x24, 'u32', 2 ** 32],
  ['inodeTable', 0x28, 'u32', 2 ** 32],
  ['freeBlocksCount', 0x2c, 'u16', 2 ** 16],
  ['freeInodesCount', 0x2e, 'u16', 2 ** 16],
  ['usedDirsCount', 0x30, 'u16', 2 ** 16],
  ['itableUnused', 0x32, 'u16', 2 ** 16],
  ['excludeBitmap', 0x34, 'u32', 2 ** 32],
  ['blockBitmapCsum', 0x38, 'u16', 2 ** 16],
  ['inodeBitmapCsum', 0x3a, 'u16', 2 ** 16],
]

/** Decode one descriptor of size bytes (32, or >= 64) at offset. */
export function decodeGroupDesc(buf: Buffer, offset: number, size: number): GroupDesc {
  if (size !== 32 && size < 64) throw new RangeError(`group descriptor size ${size}`)
  if (offset + size > buf.length) throw new RangeError('group descriptor past the buffer')
  const gd = decodeFields(buf, offset, LO) as unknown as GroupDesc
  if (size >= 64) {
    for (const [name, at, type, scale] of HI) {
      const hi = type === 'u32' ? buf.readUInt32LE(offset + at) : buf.readUInt16LE(offset + at)
      gd[name] += hi * scale
    }
  }
  return gd
}

/** Encode gd as size bytes (32 or 64); the reserved word is zero. */
export function encodeGroupDesc(gd: GroupDesc, size: 32 | 64): Buffer {
  const out = Buffer.alloc(size)
  const lo: Record<string, number> = {}
  for (const [name, , type] of LO) lo[name] = gd[name as keyof GroupDesc] % (type === 'u16' ? 2 ** 16 : 2 ** 32)
  encodeFields(out, 0, LO, lo)
  if (size === 64) {
    for (const [name, at, type, scale] of HI) {
      const hi = Math.floor(gd[name] / scale)
      if (type === 'u32') out.writeUInt32LE(hi, at)
      else out.writeUInt16LE(hi, at)
    }
  }
  return out
}
