/*
 * Pass 1 repair of the resize inode's map (inode 7): the double-indirect
 * block and the reserved GDT blocks it names hold nothing but a layout the
 * geometry fixes (resize-inode.ts says which), so when their contents or
 * i_blocks are wrong they are rewritten to it, as e2fsck -fy's "Resize inode
 * not valid. Recreate? yes" ends up with. Left when the inode itself is bent:
 * another i_block slot set, no double-indirect block or one outside the file
 * system, or another fault of inode 7 (a bad checksum, a block claimed twice).
 */
import { hasFeature } from '../../format/features.ts'
import { blocksIn512 } from '../../format/inode.ts'
import { gdtBlocks, groupStart, hasSuperBackup } from '../pass1-super.ts'
import { errText } from '../problems.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const RESIZE_INO = 7
const DIND_SLOT = 13
const I_BLOCK_SLOTS = 15

export async function repairResizeInode({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const mine = problems.find((p) => p.code === 'RESIZE_INODE_INVALID')
  if (mine === undefined) return []
  const leave = (why: string): Repair[] => [left(1, mine.code, `${mine.message} (not repaired: ${why})`, { ino: RESIZE_INO })]
  const other = problems.find((p) => p.ino === RESIZE_INO && p.severity === 'error' && p.code !== mine.code)
  if (other !== undefined) return leave(`inode 7 also has ${other.code}`)
  const { sb, blockSize: bs, blocksCount, groupCount } = ctx.img
  if (!hasFeature(sb, 'compat', 'resize_inode')) return leave('no resize_inode feature')
  let inode
  try {
    inode = await ctx.img.readInode(RESIZE_INO)
  } catch (err) {
    return leave(errText(err))
  }
  for (let slot = 0; slot < I_BLOCK_SLOTS; slot++) if (slot !== DIND_SLOT && inode.block.readUInt32LE(slot * 4) !== 0) return leave(`i_block[${slot}] is set`)
  const dind = inode.block.readUInt32LE(DIND_SLOT * 4)
  if (dind < sb.firstDataBlock || dind >= blocksCount || dind === 0) return leave(`double-indirect block ${dind}`)
  const perBlock = bs / 4
  const first = sb.firstDataBlock + 1 + gdtBlocks(ctx)
  const backups: number[] = []
  for (let g = 1; g < groupCount; g++) if (hasSuperBackup(ctx, g)) backups.push(groupStart(ctx, g) - sb.firstDataBlock)
  const out: Repair[] = []
  // Each block as the layout has it; written only where it differs.
  const rewrite = async (block: number, want: (slot: number) => number, what: string): Promise<void> => {
    const buf = await h.get(block)
    let changed = 0
    for (let slot = 0; slot < perBlock; slot++) {
      const v = want(slot)
      if (buf.readUInt32LE(slot * 4) === v) continue
      buf.writeUInt32LE(v, slot * 4)
      changed++
    }
    if (changed === 0) return
    h.dirty(block)
    out.push(fixed(1, 'RESIZE_INODE_REWRITTEN', `resize inode ${what} ${block}: ${changed} entr${changed === 1 ? 'y' : 'ies'} set to the layout`, { ino: RESIZE_INO, block }))
  }
  const dindWant = new Map<number, number>()
  for (let i = 0; i < sb.reservedGdtBlocks; i++) dindWant.set((gdtBlocks(ctx) + i) % perBlock, first + i)
  await rewrite(dind, (slot) => dindWant.get(slot) ?? 0, 'double-indirect block')
  for (let i = 0; i < sb.reservedGdtBlocks; i++) {
    const pblk = first + i
    await rewrite(pblk, (slot) => (slot < backups.length ? pblk + (backups[slot] ?? 0) : 0), 'reserved GDT block')
  }
  const blocks = (1 + sb.reservedGdtBlocks * (1 + Math.min(backups.length, perBlock))) * (bs / 512)
  const had = blocksIn512(inode, bs)
  if (had !== blocks && (await updateInode(ctx, h, RESIZE_INO, (i) => void (i.blocks = blocks)))) {
    out.push(fixed(1, 'RESIZE_INODE_REWRITTEN', `resize inode: i_blocks ${had} → ${blocks}`, { ino: RESIZE_INO }))
  }
  return out.length > 0 ? out : leave('its map already matches the layout')
}
