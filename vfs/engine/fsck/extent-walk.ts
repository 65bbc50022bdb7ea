/*
 * Pass 1's walk of one inode's extent tree (ifork.rst): every node checked
 * (magic, entries within max, depth one less than its parent, keys in order
 * and inside the range the parent gives them, checksum tail), every block
 * the tree maps or is made of marked in the block map. A node whose block is
 * already claimed is not descended into, so a corrupt tree that points many
 * indexes at one node costs one visit, not one per path.
 */
import { decodeExtentNode } from '../format/extent.ts'
import type { ExtentNode } from '../format/extent.ts'
import type { Inode } from '../format/inode.ts'
import { I_BLOCK_SIZE } from '../format/inode.ts'
import type { FsckContext } from './context.ts'
import { errText } from './problems.ts'

export interface ExtentWalk {
  /** The root was readable (otherwise nothing else is meaningful). */
  ok: boolean
  /** Data blocks mapped plus tree blocks, as i_blocks should count them. */
  blocks: number
  /** Last logical block mapped (-1: none). */
  lastBlock: number
  /** Last logical block mapped by an initialised extent (-1: none). */
  lastInitBlock: number
  /** Initialised extents [logical, physical, length], when asked for (directories, slow symlinks). */
  extents: Array<[number, number, number]>
}

/** One past the largest logical block number (logical blocks are 32-bit). */
const LBLK_END = 2 ** 32

export async function walkExtents(ctx: FsckContext, ino: number, inode: Inode, keep: boolean): Promise<ExtentWalk> {
  const out: ExtentWalk = { ok: false, blocks: 0, lastBlock: -1, lastInitBlock: -1, extents: [] }
  const r = ctx.report
  let root: ExtentNode
  try {
    root = decodeExtentNode(inode.block, I_BLOCK_SIZE, `inode ${ino} extent root`)
  } catch (err) {
    r.add(1, 'EXTENT_BAD_HEADER', errText(err), { ino })
    return out
  }
  out.ok = true

  const visit = async (node: ExtentNode, lo: number, hi: number, where: string): Promise<void> => {
    if (node.header.depth === 0) {
      for (const e of node.extents) {
        if (e.block < lo || e.block + e.len > hi) {
          r.add(1, 'EXTENT_OUT_OF_ORDER', `inode ${ino} ${where}: extent at logical ${e.block}+${e.len} outside its index range ${lo}..${hi - 1}`, { ino, block: e.start })
        }
        if (ctx.claim(1, e.start, e.len, `inode ${ino} extent at logical ${e.block}`, ino) === 'outside') continue
        out.blocks += e.len
        out.lastBlock = Math.max(out.lastBlock, e.block + e.len - 1)
        if (!e.uninit) {
          out.lastInitBlock = Math.max(out.lastInitBlock, e.block + e.len - 1)
          if (keep) out.extents.push([e.block, e.start, e.len])
        }
      }
      return
    }
    for (const [i, ix] of node.indexes.entries()) {
      const end = Math.min(hi, node.indexes[i + 1]?.block ?? hi)
      if (ix.block < lo || ix.block >= hi) {
        r.add(1, 'EXTENT_OUT_OF_ORDER', `inode ${ino} ${where}: index key ${ix.block} outside its range ${lo}..${hi - 1}`, { ino, block: ix.leaf })
        continue
      }
      const claimed = ctx.claim(1, ix.leaf, 1, `inode ${ino} extent tree block`, ino)
      if (claimed === 'outside') continue
      out.blocks++
      if (claimed === 'dup') continue
      const raw = await ctx.img.readBlocks(ix.leaf, 1, `inode ${ino} extent block`)
      if (ctx.csum) ctx.verify(1, 'EXTENT_CSUM', 'extent-block', raw, { block: ix.leaf, ino, generation: inode.generation })
      let child: ExtentNode
      try {
        child = decodeExtentNode(raw, ctx.img.blockSize, `inode ${ino} extent block ${ix.leaf}`)
      } catch (err) {
        r.add(1, 'EXTENT_BAD_NODE', errText(err), { ino, block: ix.leaf })
        continue
      }
      if (child.header.depth !== node.header.depth - 1) {
        r.add(1, 'EXTENT_BAD_DEPTH', `inode ${ino}: extent block ${ix.leaf} at depth ${child.header.depth} under depth ${node.header.depth}`, { ino, block: ix.leaf })
        continue
      }
      if (child.header.entries === 0) r.add(1, 'EXTENT_BAD_NODE', `inode ${ino}: extent block ${ix.leaf} is empty`, { ino, block: ix.leaf })
      await visit(child, ix.block, end, `extent block ${ix.leaf}`)
    }
  }
  await visit(root, 0, LBLK_END, 'extent root')
  return out
}
