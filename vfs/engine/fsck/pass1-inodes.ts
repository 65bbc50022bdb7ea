/*
 * Pass 1, the inodes: every inode table streamed group by group (a chunk at
 * a time; an INODE_UNINIT group and the bg_itable_unused tail are never in
 * use, as e2fsck skips them), each inode's checksum, mode, flags and, for
 * those in use, the blocks it claims (inode-check.ts).
 */
import { hasFeature } from '../format/features.ts'
import { BG_INODE_UNINIT } from '../format/group-desc.ts'
import { decodeInode } from '../format/inode.ts'
import type { FsckContext } from './context.ts'
import { checkInode } from './inode-check.ts'
import { hasGroupCsum } from './pass1-super.ts'
import { errText } from './problems.ts'

/** Bytes of inode table read at once. */
const TABLE_CHUNK = 1 << 20
const I_GENERATION_OFFSET = 0x64
const I_LINKS_OFFSET = 0x1a
const I_DTIME_OFFSET = 0x14

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false
  return true
}

export async function scanInodes(ctx: FsckContext): Promise<void> {
  const { sb, blockSize: bs, inodeSize: isz } = ctx.img
  const r = ctx.report
  const hugeFile = hasFeature(sb, 'ro_compat', 'huge_file')
  const perChunk = Math.max(1, Math.floor(TABLE_CHUNK / isz))
  for (const [g, gd] of ctx.groups.entries()) {
    const first = g * sb.inodesPerGroup + 1
    if ((gd.flags & BG_INODE_UNINIT) !== 0 && g > 0) continue
    const used = hasGroupCsum(ctx) ? sb.inodesPerGroup - Math.min(gd.itableUnused, sb.inodesPerGroup) : sb.inodesPerGroup
    const tableBlocks = Math.ceil((sb.inodesPerGroup * isz) / bs)
    if (gd.inodeTable < sb.firstDataBlock || gd.inodeTable + tableBlocks > ctx.img.blocksCount) continue // reported by checkGroupDescs
    for (let i = 0; i < used; i += perChunk) {
      const n = Math.min(perChunk, used - i)
      const at = gd.inodeTable * bs + i * isz
      const firstBlock = Math.floor(at / bs)
      const raw = await ctx.img.readBlocks(firstBlock, Math.floor((at + n * isz - 1) / bs) - firstBlock + 1, `group ${g} inode table`)
      const base = at - firstBlock * bs
      for (let k = 0; k < n; k++) {
        const ino = first + i + k
        const bytes = raw.subarray(base + k * isz, base + (k + 1) * isz)
        const reserved = ino < sb.firstIno
        const links = bytes.readUInt16LE(I_LINKS_OFFSET)
        const orphan = ctx.orphans.has(ino)
        if (!reserved && links === 0 && !orphan) {
          // Free. A deleted inode carries its deletion time; one without it (and with a mode) was never released properly.
          if (bytes.readUInt16LE(0) !== 0 && bytes.readUInt32LE(I_DTIME_OFFSET) === 0) r.add(1, 'INODE_ZERO_DTIME', `inode ${ino}: deleted (no links) but i_dtime is 0`, { ino })
          continue
        }
        if (isZero(bytes)) {
          if (!reserved) r.add(1, 'INODE_ZERO', `inode ${ino}: in use but all zeros`, { ino })
          ctx.inodes.set(ino)
          continue
        }
        const block = Math.floor((gd.inodeTable * bs + (i + k) * isz) / bs)
        if (ctx.csum) ctx.verify(1, 'INODE_CSUM', 'inode', bytes, { block, ino, generation: bytes.readUInt32LE(I_GENERATION_OFFSET) })
        ctx.inodes.set(ino)
        let inode
        try {
          inode = decodeInode(bytes, 0, isz, hugeFile)
        } catch (err) {
          r.add(1, 'INODE_BAD_EXTRA_ISIZE', `inode ${ino}: ${errText(err)}`, { ino, block })
          continue
        }
        await checkInode(ctx, ino, inode, bytes)
      }
    }
  }
}
