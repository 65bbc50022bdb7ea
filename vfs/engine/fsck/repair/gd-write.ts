/*
 * Writing group descriptors and the superblock's counters from fsck: decode
 * the record in place, change fields, encode it back (format/ encoders), and
 * recompute its checksum the way the allocator does (crc32c with
 * metadata_csum, crc16 with gdt_csum). Bytes the encoders do not cover (the
 * reserved tail of a descriptor) are kept.
 */
import { groupDescCrc16 } from '../../alloc/group-table.ts'
import { hasFeature } from '../../format/features.ts'
import { decodeGroupDesc, encodeGroupDesc, GROUP_DESC_CHECKSUM_OFFSET } from '../../format/group-desc.ts'
import type { GroupDesc } from '../../format/group-desc.ts'
import { decodeSuperblock, descSize, encodeSuperblock, SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../format/superblock.ts'
import type { Superblock } from '../../format/superblock.ts'
import { csumSeed, groupDescCsum, superblockCsum } from '../../reader/csum-verifier.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'

/** The high halves end here in a 64-byte descriptor; past it is reserved. */
const DESC_ENCODED_END = 0x3c

/** The checksum descriptor raw of group g should carry, or undefined when the image keeps none. */
export function descChecksum(sb: Superblock, g: number, raw: Buffer): number | undefined {
  if (hasFeature(sb, 'ro_compat', 'metadata_csum')) return groupDescCsum(csumSeed(sb), g, raw)
  if (hasFeature(sb, 'ro_compat', 'uninit_bg')) return groupDescCrc16(sb.uuid, g, raw)
  return undefined
}

function descPlace(ctx: FsckContext, g: number): { block: number; at: number; size: number } {
  const { sb, blockSize: bs } = ctx.img
  const size = descSize(sb)
  const perBlock = bs / size
  return { block: sb.firstDataBlock + 1 + Math.floor(g / perBlock), at: (g % perBlock) * size, size }
}

/** Change group g's descriptor: mutate gets the decoded record; it is written back with a fresh checksum only when its bytes change. True when written. */
export async function updateDesc(ctx: FsckContext, h: MetaTxn, g: number, mutate: (gd: GroupDesc) => void): Promise<boolean> {
  const { block, at, size } = descPlace(ctx, g)
  const buf = await h.get(block)
  const raw = buf.subarray(at, at + size)
  const before = Buffer.from(raw)
  const gd = decodeGroupDesc(raw, 0, size)
  mutate(gd)
  const enc = encodeGroupDesc(gd, size === 32 ? 32 : 64)
  enc.copy(raw, 0, 0, size === 32 ? 32 : DESC_ENCODED_END)
  const sum = descChecksum(ctx.img.sb, g, raw)
  if (sum !== undefined) raw.writeUInt16LE(sum, GROUP_DESC_CHECKSUM_OFFSET)
  else raw.writeUInt16LE(before.readUInt16LE(GROUP_DESC_CHECKSUM_OFFSET), GROUP_DESC_CHECKSUM_OFFSET)
  if (before.equals(raw)) return false
  h.dirty(block)
  ctx.groups[g] = decodeGroupDesc(raw, 0, size)
  return true
}

/** Change the primary superblock: mutate gets the decoded one; it is written back, checksummed, only when its bytes change. True when written. */
export async function updateSuperblock(ctx: FsckContext, h: MetaTxn, mutate: (sb: Superblock) => void): Promise<boolean> {
  const bs = ctx.img.blockSize
  const block = Math.floor(SUPERBLOCK_OFFSET / bs)
  const at = SUPERBLOCK_OFFSET % bs
  const buf = await h.get(block)
  const raw = buf.subarray(at, at + SUPERBLOCK_SIZE)
  const sb = decodeSuperblock(Buffer.from(raw))
  mutate(sb)
  const enc = encodeSuperblock(sb, Buffer.from(raw))
  if (hasFeature(sb, 'ro_compat', 'metadata_csum')) enc.writeUInt32LE(superblockCsum(enc), SUPERBLOCK_CHECKSUM_OFFSET)
  if (enc.equals(raw)) return false
  enc.copy(raw)
  h.dirty(block)
  return true
}
