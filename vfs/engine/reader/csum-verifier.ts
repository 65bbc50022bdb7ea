/*
 * metadata_csum verification (Documentation/filesystems/ext4/checksums.rst):
 * every structure the reader decodes is checked against the crc32c ext4
 * stored in it, so a flipped bit in metadata is reported as such instead of
 * being walked as if it were true. All sums are the raw (uninverted) crc32c
 * chained from a per-fs seed; per-inode structures chain the inode number and
 * generation on top of it, which ties a block to the inode that owns it.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { FormatError } from '../format/errors.ts'
import { hasFeature } from '../format/features.ts'
import { DIR_TAIL_FT, DIR_TAIL_SIZE, DX_TAIL_SIZE, recLenFromDisk } from '../format/dirent.ts'
import { EXTENT_HEADER_SIZE, EXTENT_MAGIC, extentTailOffset, decodeExtentHeader } from '../format/extent.ts'
import { GROUP_DESC_CHECKSUM_OFFSET } from '../format/group-desc.ts'
import { GOOD_OLD_INODE_SIZE, INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET } from '../format/inode.ts'
import { descSize, SUPERBLOCK_CHECKSUM_OFFSET } from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import type { MetadataContext, MetadataKind, Verifier } from './verify.ts'

/** s_checksum_type: the only algorithm defined (crc32c). */
export const CHECKSUM_TYPE_CRC32C = 1
const ALL_ONES = 0xffffffff
/** The large inode's i_extra_isize, whose size decides whether i_checksum_hi exists. */
const EXTRA_ISIZE_OFFSET = 0x80
const INODE_GENERATION_OFFSET = 0x64
/** dx_root: "." (12 bytes), ".." header (12 bytes with its name), dx_root_info (8), then count/limit. */
const DX_ROOT_COUNT_OFFSET = 0x20
const DX_NODE_COUNT_OFFSET = 0x8
const DX_ENTRY_SIZE = 8
const ZERO4 = new Uint8Array(4)
/** A descriptor this long holds the high halves of both bitmap checksums (EXT4_BG_*_BITMAP_CSUM_HI_END). */
const BITMAP_CSUM_HI_END = 0x3c

function le32(n: number): Uint8Array {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n >>> 0)
  return b
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`
}

/** Does the image carry metadata checksums the verifier can check? */
export function hasMetadataCsum(sb: Superblock): boolean {
  return hasFeature(sb, 'ro_compat', 'metadata_csum')
}

/** The per-fs seed every checksum but the superblock's chains from. */
export function csumSeed(sb: Superblock): number {
  if (hasFeature(sb, 'incompat', 'metadata_csum_seed')) return sb.checksumSeed >>> 0
  return crc32cUpdate(ALL_ONES, sb.uuid)
}

/** The superblock's checksum: crc32c(~0) over everything before s_checksum. */
export function superblockCsum(raw: Uint8Array): number {
  return crc32cUpdate(ALL_ONES, raw.subarray(0, SUPERBLOCK_CHECKSUM_OFFSET))
}

/** The seed of inode ino's own structures: fs seed, then le32 ino, then le32 generation. */
export function inodeSeed(seed: number, ino: number, generation: number): number {
  return crc32cUpdate(crc32cUpdate(seed, le32(ino)), le32(generation))
}

/** A group descriptor's bg_checksum: low 16 bits of crc32c(seed, le32 group, desc with bg_checksum as zero). */
export function groupDescCsum(seed: number, group: number, desc: Uint8Array): number {
  let c = crc32cUpdate(seed, le32(group))
  c = crc32cUpdate(c, desc.subarray(0, GROUP_DESC_CHECKSUM_OFFSET))
  c = crc32cUpdate(c, ZERO4.subarray(0, 2))
  c = crc32cUpdate(c, desc.subarray(GROUP_DESC_CHECKSUM_OFFSET + 2))
  return c & 0xffff
}

/** Does i_checksum_hi exist in this inode (a large inode whose i_extra_isize covers it)? */
function hasChecksumHi(raw: Buffer): boolean {
  if (raw.length <= GOOD_OLD_INODE_SIZE) return false
  const extra = raw.readUInt16LE(EXTRA_ISIZE_OFFSET)
  return INODE_CHECKSUM_HI_OFFSET + 2 <= GOOD_OLD_INODE_SIZE + extra
}

/** An inode's checksum over all inodeSize bytes with both halves zeroed; 16 bits when there is no hi half. */
export function inodeCsum(seed: number, ino: number, generation: number, raw: Buffer): number {
  const hi = hasChecksumHi(raw)
  let c = inodeSeed(seed, ino, generation)
  c = crc32cUpdate(c, raw.subarray(0, INODE_CHECKSUM_LO_OFFSET))
  c = crc32cUpdate(c, ZERO4.subarray(0, 2))
  if (hi) {
    c = crc32cUpdate(c, raw.subarray(INODE_CHECKSUM_LO_OFFSET + 2, INODE_CHECKSUM_HI_OFFSET))
    c = crc32cUpdate(c, ZERO4.subarray(0, 2))
    c = crc32cUpdate(c, raw.subarray(INODE_CHECKSUM_HI_OFFSET + 2))
    return c
  }
  c = crc32cUpdate(c, raw.subarray(INODE_CHECKSUM_LO_OFFSET + 2))
  return c & 0xffff
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false
  return true
}

/** Where a dx block's count/limit sits (root or interior node), or undefined when it is neither. */
function dxCountOffset(block: Buffer): number | undefined {
  const bs = block.length
  const first = recLenFromDisk(block.readUInt16LE(4), bs)
  if (first === bs && block.readUInt32LE(0) === 0) return DX_NODE_COUNT_OFFSET
  if (first === 12 && bs >= DX_ROOT_COUNT_OFFSET + 4 && recLenFromDisk(block.readUInt16LE(12 + 4), bs) === bs - 12) return DX_ROOT_COUNT_OFFSET
  return undefined
}

function bad(kind: MetadataKind, ctx: MetadataContext, expected: number, found: number): FormatError {
  const owner = ctx.ino !== undefined ? ` of inode ${ctx.ino}` : ctx.group !== undefined ? ` of group ${ctx.group}` : ''
  return new FormatError('EXT4_BAD_CHECKSUM', `${kind}${owner} in block ${ctx.block}: checksum ${hex(found)} on disk, computed ${hex(expected)}`)
}

function noTail(kind: MetadataKind, ctx: MetadataContext, why: string): FormatError {
  const owner = ctx.ino !== undefined ? ` of inode ${ctx.ino}` : ''
  return new FormatError('EXT4_BAD_CHECKSUM', `${kind}${owner} in block ${ctx.block}: no checksum (${why})`)
}

function needGeneration(kind: MetadataKind, ctx: MetadataContext): { ino: number; generation: number } {
  if (ctx.ino === undefined || ctx.generation === undefined) throw new TypeError(`${kind} verification needs the owning inode number and generation`)
  return { ino: ctx.ino, generation: ctx.generation }
}

/**
 * A Verifier for an image with metadata_csum: throws FormatError
 * ('EXT4_BAD_CHECKSUM') naming the structure, its block, and the stored and
 * computed sums. sb is the decoded superblock of the same image.
 */
export function metadataCsumVerifier(sb: Superblock): Verifier {
  const seed = csumSeed(sb)
  const gdSize = descSize(sb)
  return {
    verify(kind, bytes, ctx) {
      switch (kind) {
        case 'superblock': {
          const want = superblockCsum(bytes)
          const have = bytes.readUInt32LE(SUPERBLOCK_CHECKSUM_OFFSET)
          if (want !== have) throw bad(kind, ctx, want, have)
          // Judged after the sum, so a damaged field reads as damage; an intact one naming another algorithm is refused.
          if (sb.checksumType !== CHECKSUM_TYPE_CRC32C) {
            throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `superblock: s_checksum_type ${sb.checksumType} (only 1, crc32c, is defined)`)
          }
          return
        }
        case 'group-desc': {
          if (ctx.group === undefined) throw new TypeError('group-desc verification needs the group number')
          const want = groupDescCsum(seed, ctx.group, bytes.subarray(0, gdSize))
          const have = bytes.readUInt16LE(GROUP_DESC_CHECKSUM_OFFSET)
          if (want !== have) throw bad(kind, ctx, want, have)
          return
        }
        case 'inode': {
          // An inode never written (zeros in a lazily initialised table) has no checksum; e2fsprogs accepts it too.
          if (isZero(bytes)) return
          if (ctx.ino === undefined) throw new TypeError('inode verification needs the inode number')
          const generation = ctx.generation ?? bytes.readUInt32LE(INODE_GENERATION_OFFSET)
          const want = inodeCsum(seed, ctx.ino, generation, bytes)
          const lo = bytes.readUInt16LE(INODE_CHECKSUM_LO_OFFSET)
          const have = hasChecksumHi(bytes) ? (lo | (bytes.readUInt16LE(INODE_CHECKSUM_HI_OFFSET) << 16)) >>> 0 : lo
          if (want !== have) throw bad(kind, ctx, want, have)
          return
        }
        case 'extent-block': {
          const { ino, generation } = needGeneration(kind, ctx)
          if (bytes.length < EXTENT_HEADER_SIZE) throw noTail(kind, ctx, 'short block')
          const header = decodeExtentHeader(bytes)
          if (header.magic !== EXTENT_MAGIC) throw noTail(kind, ctx, `bad extent magic 0x${header.magic.toString(16)}`)
          const at = extentTailOffset(header)
          if (at + 4 > bytes.length) throw noTail(kind, ctx, `eh_max ${header.max} leaves no room for the tail`)
          const want = crc32cUpdate(inodeSeed(seed, ino, generation), bytes.subarray(0, at))
          const have = bytes.readUInt32LE(at)
          if (want !== have) throw bad(kind, ctx, want, have)
          return
        }
        case 'dir-block': {
          const { ino, generation } = needGeneration(kind, ctx)
          const bs = bytes.length
          const t = bs - DIR_TAIL_SIZE
          const isTail = t >= 0 && bytes.readUInt32LE(t) === 0 && recLenFromDisk(bytes.readUInt16LE(t + 4), bs) === DIR_TAIL_SIZE && bytes[t + 6] === 0 && bytes[t + 7] === DIR_TAIL_FT
          if (!isTail) throw noTail(kind, ctx, 'the block does not end in a checksum entry')
          const want = crc32cUpdate(inodeSeed(seed, ino, generation), bytes.subarray(0, t))
          const have = bytes.readUInt32LE(t + 8)
          if (want !== have) throw bad(kind, ctx, want, have)
          return
        }
        case 'dx-block': {
          const { ino, generation } = needGeneration(kind, ctx)
          const at = dxCountOffset(bytes)
          if (at === undefined) throw noTail(kind, ctx, 'neither an htree root nor an htree node')
          const limit = bytes.readUInt16LE(at)
          const count = bytes.readUInt16LE(at + 2)
          const tail = at + limit * DX_ENTRY_SIZE
          if (tail + DX_TAIL_SIZE > bytes.length) throw noTail(kind, ctx, `htree limit ${limit} leaves no room for the tail`)
          if (count > limit) throw noTail(kind, ctx, `htree count ${count} over limit ${limit}`)
          // Over the header and the entries in use, then dt_reserved and a zero checksum field.
          let c = crc32cUpdate(inodeSeed(seed, ino, generation), bytes.subarray(0, at + count * DX_ENTRY_SIZE))
          c = crc32cUpdate(c, bytes.subarray(tail, tail + 4))
          const want = crc32cUpdate(c, ZERO4)
          const have = bytes.readUInt32LE(tail + 4)
          if (want !== have) throw bad(kind, ctx, want, have)
          return
        }
        case 'block-bitmap':
        case 'inode-bitmap': {
          if (ctx.stored === undefined) throw new TypeError(`${kind} verification needs the checksum from the group descriptor`)
          // Only the bits of the group count: clusters (block bitmap) or inodes per group, in bytes.
          const bits = kind === 'block-bitmap' ? sb.clustersPerGroup : sb.inodesPerGroup
          const size = Math.floor(bits / 8)
          if (size > bytes.length) throw noTail(kind, ctx, `${bits} bits per group do not fit a ${bytes.length}-byte bitmap`)
          const c = crc32cUpdate(seed, bytes.subarray(0, size))
          const want = gdSize >= BITMAP_CSUM_HI_END ? c : c & 0xffff
          if (want !== ctx.stored >>> 0) throw bad(kind, ctx, want, ctx.stored)
          return
        }
      }
    },
  }
}

