/*
 * Pass 1B-1D repair of multiply-claimed blocks, as e2fsck -fy's default
 * "Clone multiply-claimed blocks? yes": every inode that claimed a block
 * something claimed before it (another inode, or the file system's own
 * metadata) gets its own copy, and the first claimant keeps the original, as
 * e2fsck leaves the last owner of a block alone once the others have copies.
 * e2fsck copies block by block; we copy each extent that touches a shared
 * block whole, to a free run of its length, and point the extent there: the
 * tree keeps its shape (no extent split, no new tree block), the data reads
 * the same, and the blocks the extent held alone become free for the pass 5
 * repair to release after the next check.
 *
 * Left: an inode whose checksum or extent tree fails (its map is not to be
 * trusted), a shared block that is not file data (its extended attribute
 * block), a shared extent tree block (cloning a node is the engine's extent
 * code's business), an inode without extents, no free run long enough, and
 * more than MAX_CLONE_BLOCKS blocks in one step (the copies are held in memory
 * until the step ends; the next sweep takes the rest).
 */
import { crc32cUpdate } from '../../crc32c.ts'
import { decodeExtentNode, encodeExtent, EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE, extentTailOffset } from '../../format/extent.ts'
import type { Extent, ExtentNode } from '../../format/extent.ts'
import { I_BLOCK_SIZE, INODE_FLAGS } from '../../format/inode.ts'
import { csumSeed, inodeSeed } from '../../reader/csum-verifier.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'
import { errText } from '../problems.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

/** Blocks copied at most in one step: 64 MiB of 4 KiB blocks held until the step's handle ends. */
export const MAX_CLONE_BLOCKS = 16384

/** One extent to move: where its entry lives (the inode's root, or a leaf block) and its slot there. */
interface Move {
  leaf: number | undefined
  slot: number
  extent: Extent
}

function overlaps(runs: ReadonlyArray<[number, number]>, first: number, count: number): boolean {
  return runs.some(([b, n]) => b < first + count && first < b + n)
}

/** The first run of count blocks free in the check's map. */
function freeRun(ctx: FsckContext, count: number): number | undefined {
  let start = ctx.img.sb.firstDataBlock
  for (let b = start; b < ctx.img.blocksCount; b++) {
    if (ctx.blocks.get(b)) start = b + 1
    else if (b - start + 1 === count) return start
  }
  return undefined
}

/** The extents of ino that touch its shared runs, or why they cannot be moved. */
async function sharedExtents(ctx: FsckContext, ino: number, runs: ReadonlyArray<[number, number]>): Promise<Move[] | string> {
  const inode = await ctx.img.readInode(ino)
  if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) return 'the inode is block-mapped'
  const moves: Move[] = []
  const visit = async (node: ExtentNode, leaf: number | undefined): Promise<string | undefined> => {
    if (node.header.depth === 0) {
      for (const [slot, e] of node.extents.entries()) if (overlaps(runs, e.start, e.len)) moves.push({ leaf, slot, extent: e })
      return undefined
    }
    for (const ix of node.indexes) {
      if (overlaps(runs, ix.leaf, 1)) return `its extent tree block ${ix.leaf} is shared`
      const child = decodeExtentNode(await ctx.img.readBlocks(ix.leaf, 1, `inode ${ino} extent block`), ctx.img.blockSize, `inode ${ino} extent block ${ix.leaf}`)
      const why = await visit(child, ix.leaf)
      if (why !== undefined) return why
    }
    return undefined
  }
  try {
    const why = await visit(decodeExtentNode(inode.block, I_BLOCK_SIZE, `inode ${ino} extent root`), undefined)
    return why ?? moves
  } catch (err) {
    return errText(err)
  }
}

/** Point the moved extents at their copies: the root's in the inode record, a leaf's in its block (with its checksum). */
async function repoint(ctx: FsckContext, h: MetaTxn, ino: number, moves: readonly Move[]): Promise<boolean> {
  const inRoot = moves.filter((m) => m.leaf === undefined)
  if (inRoot.length > 0) {
    const ok = await updateInode(ctx, h, ino, (inode) => {
      for (const m of inRoot) encodeExtent(m.extent).copy(inode.block, EXTENT_HEADER_SIZE + m.slot * EXTENT_ENTRY_SIZE)
    })
    if (!ok) return false
  }
  const generation = (await ctx.img.readInode(ino)).generation
  for (const m of moves) {
    if (m.leaf === undefined) continue
    const buf = await h.get(m.leaf)
    encodeExtent(m.extent).copy(buf, EXTENT_HEADER_SIZE + m.slot * EXTENT_ENTRY_SIZE)
    if (ctx.csum) {
      const tail = extentTailOffset(decodeExtentNode(buf, ctx.img.blockSize, `extent block ${m.leaf}`).header)
      buf.writeUInt32LE(crc32cUpdate(inodeSeed(csumSeed(ctx.img.sb), ino, generation), buf.subarray(0, tail)), tail)
    }
    h.dirty(m.leaf)
  }
  return true
}

export async function cloneShared({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const reported = new Map<number, string>()
  for (const p of problems) if (p.code === 'BLOCK_MULTIPLY_CLAIMED' && p.ino !== undefined && !reported.has(p.ino)) reported.set(p.ino, p.message)
  if (reported.size === 0) return out
  const distrust = new Map<number, string>()
  for (const p of problems) if (p.pass === 1 && p.ino !== undefined && (p.code === 'INODE_CSUM' || p.code.startsWith('EXTENT_'))) distrust.set(p.ino, p.code)
  let budget = MAX_CLONE_BLOCKS
  for (const [ino, message] of reported) {
    const refuse = (why: string): void => void out.push(left(1, 'BLOCK_MULTIPLY_CLAIMED', `${message} (not cloned: ${why})`, { ino }))
    const runs = ctx.dupRuns.get(ino)
    if (runs === undefined) {
      refuse('its shared blocks were not all recorded (too many in the image)')
      continue
    }
    const bad = distrust.get(ino)
    if (bad !== undefined) {
      refuse(`the inode also has ${bad}`)
      continue
    }
    const moves = await sharedExtents(ctx, ino, runs)
    if (typeof moves === 'string') {
      refuse(moves)
      continue
    }
    // A shared block outside the extents' data (an extended attribute block) is not cloned here: nothing would change.
    const outside = runs.find(([b, n]) => !moves.some((m) => overlaps([[b, n]], m.extent.start, m.extent.len)))
    if (outside !== undefined) {
      refuse(`shared block ${outside[0]} is not in its extents' data (an extended attribute block?)`)
      continue
    }
    const total = moves.reduce((n, m) => n + m.extent.len, 0)
    if (total > budget) {
      refuse(`${total} blocks to copy, over the ${budget} left in this step`)
      continue
    }
    const copies: string[] = []
    let why: string | undefined
    for (const m of moves) {
      const to = freeRun(ctx, m.extent.len)
      if (to === undefined) {
        why = `no free run of ${m.extent.len} blocks`
        break
      }
      // The map first: the next extent's run must not land here.
      for (let i = 0; i < m.extent.len; i++) ctx.blocks.set(to + i)
      const data = await ctx.img.readBlocks(m.extent.start, m.extent.len, `inode ${ino} shared blocks`)
      const bs = ctx.img.blockSize
      for (let i = 0; i < m.extent.len; i++) data.copy(h.fresh(to + i), 0, i * bs, (i + 1) * bs)
      copies.push(`${m.extent.start}+${m.extent.len} → ${to}`)
      m.extent = { ...m.extent, start: to }
    }
    // Blocks already copied for this inode are unreferenced if it is refused: the pass 5 repair frees them.
    if (why !== undefined) {
      refuse(why)
      continue
    }
    if (!(await repoint(ctx, h, ino, moves))) {
      refuse('the inode table is outside the file system')
      continue
    }
    budget -= total
    out.push(fixed(1, 'BLOCKS_CLONED', `inode ${ino}: multiply-claimed blocks cloned (${copies.join(', ')})`, { ino }))
  }
  return out
}
