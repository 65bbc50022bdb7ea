/*
 * Checksums recomputed after a mutation, so the damage gets past the
 * verifier and reaches the structural checks (where a reader crashes if it
 * trusts a count). Computed as checksums.rst says, with the verifier's own
 * building blocks; a structure whose checksum has no place any more (a
 * destroyed tail, a wrong magic) is left as it is.
 */
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { DIR_TAIL_FT, DIR_TAIL_SIZE, DX_TAIL_SIZE, recLenFromDisk } from '../../../vfs/engine/format/dirent.ts'
import { decodeExtentHeader, EXTENT_MAGIC, extentTailOffset } from '../../../vfs/engine/format/extent.ts'
import { GROUP_DESC_CHECKSUM_OFFSET } from '../../../vfs/engine/format/group-desc.ts'
import { INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET } from '../../../vfs/engine/format/inode.ts'
import { decodeSuperblock, descSize, SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../../vfs/engine/format/superblock.ts'
import { csumSeed, groupDescCsum, inodeCsum, inodeSeed, superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import type { Target } from './fuzz-base.ts'

const ZERO4 = Buffer.alloc(4)

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n >>> 0)
  return b
}

/** Where a dx block's count/limit is (root or interior node), or undefined. */
function dxCountAt(b: Buffer): number | undefined {
  const bs = b.length
  if (b.readUInt32LE(0) === 0 && recLenFromDisk(b.readUInt16LE(4), bs) === bs) return 0x8
  if (recLenFromDisk(b.readUInt16LE(4), bs) === 12 && recLenFromDisk(b.readUInt16LE(16), bs) === bs - 12) return 0x20
  return undefined
}

/** The group descriptor table's byte offset and descriptor size, from the image's current superblock. */
async function gdtOf(dev: MemoryDevice): Promise<{ at: number; size: number; seed: number }> {
  const sb = decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
  const bs = 1024 * 2 ** Math.min(sb.logBlockSize, 6)
  return { at: (sb.firstDataBlock + 1) * bs, size: descSize(sb), seed: csumSeed(sb) }
}

async function resumGroupDesc(dev: MemoryDevice, group: number): Promise<void> {
  const { at, size, seed } = await gdtOf(dev)
  const where = at + group * size
  if (size < 32 || where + size > dev.size) return
  const desc = await dev.read(where, size)
  const out = Buffer.alloc(2)
  out.writeUInt16LE(groupDescCsum(seed, group, desc))
  dev.writeSync(where + GROUP_DESC_CHECKSUM_OFFSET, out)
}

/** Recompute the checksum of target t (and of whatever holds it: a bitmap's sum lives in its group descriptor). */
export async function resum(dev: MemoryDevice, t: Target): Promise<void> {
  const bytes = await dev.read(t.offset, t.length)
  const { seed } = await gdtOf(dev)
  const owner = (): number => inodeSeed(seed, t.ctx.ino ?? 0, t.ctx.generation ?? 0)
  switch (t.kind) {
    case 'superblock':
      dev.writeSync(SUPERBLOCK_OFFSET + SUPERBLOCK_CHECKSUM_OFFSET, u32(superblockCsum(bytes)))
      return
    case 'group-desc':
      await resumGroupDesc(dev, t.ctx.group ?? 0)
      return
    case 'inode': {
      const sum = inodeCsum(seed, t.ctx.ino ?? 0, bytes.readUInt32LE(0x64), bytes)
      const extra = bytes.length > 128 ? bytes.readUInt16LE(0x80) : 0
      const lo = Buffer.alloc(2)
      lo.writeUInt16LE(sum & 0xffff)
      dev.writeSync(t.offset + INODE_CHECKSUM_LO_OFFSET, lo)
      if (bytes.length > 128 && INODE_CHECKSUM_HI_OFFSET + 2 <= 128 + extra) {
        const hi = Buffer.alloc(2)
        hi.writeUInt16LE(sum >>> 16)
        dev.writeSync(t.offset + INODE_CHECKSUM_HI_OFFSET, hi)
      }
      return
    }
    case 'extent-block': {
      const h = decodeExtentHeader(bytes)
      const at = extentTailOffset(h)
      if (h.magic !== EXTENT_MAGIC || at + 4 > bytes.length) return
      dev.writeSync(t.offset + at, u32(crc32cUpdate(owner(), bytes.subarray(0, at))))
      return
    }
    case 'dir-block': {
      const at = bytes.length - DIR_TAIL_SIZE
      if (bytes.readUInt32LE(at) !== 0 || bytes[at + 7] !== DIR_TAIL_FT) return
      dev.writeSync(t.offset + at + 8, u32(crc32cUpdate(owner(), bytes.subarray(0, at))))
      return
    }
    case 'dx-block': {
      const at = dxCountAt(bytes)
      if (at === undefined) return
      const limit = bytes.readUInt16LE(at)
      const count = bytes.readUInt16LE(at + 2)
      const tail = at + limit * 8
      if (tail + DX_TAIL_SIZE > bytes.length || count > limit) return
      let c = crc32cUpdate(owner(), bytes.subarray(0, at + count * 8))
      c = crc32cUpdate(c, bytes.subarray(tail, tail + 4))
      dev.writeSync(t.offset + tail + 4, u32(crc32cUpdate(c, ZERO4)))
      return
    }
    case 'block-bitmap':
    case 'inode-bitmap': {
      const group = t.ctx.group ?? 0
      const sb = decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
      const bits = t.kind === 'block-bitmap' ? sb.clustersPerGroup : sb.inodesPerGroup
      const size = Math.min(Math.floor(bits / 8), bytes.length)
      const sum = crc32cUpdate(seed, bytes.subarray(0, size))
      const { at, size: ds } = await gdtOf(dev)
      const desc = at + group * ds
      const [lo, hi] = t.kind === 'block-bitmap' ? [0x18, 0x38] : [0x1a, 0x3a]
      if (desc + ds > dev.size) return
      const half = Buffer.alloc(2)
      half.writeUInt16LE(sum & 0xffff)
      dev.writeSync(desc + lo, half)
      if (ds >= 0x3c) {
        const h = Buffer.alloc(2)
        h.writeUInt16LE(sum >>> 16)
        dev.writeSync(desc + hi, h)
      }
      await resumGroupDesc(dev, group)
      return
    }
  }
}
