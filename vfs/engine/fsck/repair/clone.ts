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
 * repair to release after the next check. A shared extent tree block (an
 * index or leaf node) is copied to a free block and its parent's index entry
 * pointed there, top down, so the extents inside the copy are then moved as
 * any; every node written gets this inode's checksum. A shared node's
 * checksum can be right for one owner only: the later claimant's EXTENT_CSUM
 * on a block it shares is what the copy repairs, so it does not stop the
 * clone.
 *
 * A shared extended attribute block is copied too, and every inode naming
 * it pointed at the copy (xattr.ts): the later claimant is then the inodes
 * sharing that block, and they keep sharing it.
 *
 * Left: an inode whose checksum or extent tree fails otherwise (its map is
 * not to be trusted), a shared block that is neither file data nor a tree
 * node nor a valid extended attribute block, an inode without extents, no free run
 * long enough, and more than MAX_CLONE_BLOCKS blocks in one step (the copies
 * are held in memory until the step ends; the next sweep takes the rest).
 */
import { crc32cUpdate } from '../../crc32c.ts'
import { decodeExtentNode, encodeExtent, encodeExtentIndex, EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE, extentTailOffset } from '../../format/extent.ts'
import type { Extent, ExtentIndex, ExtentNode } from '../../format/extent.ts'
import { I_BLOCK_SIZE, INODE_FLAGS } from '../../format/inode.ts'
import { csumSeed, inodeSeed } from '../../reader/csum-verifier.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'
import { errText } from '../problems.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import { cloneXattrBlock, xattrCloneRefusal } from './xattr.ts'
import type { Repair, StepInput } from './record.ts'

/** Blocks copied at most in one step: 64 MiB of 4 KiB blocks held until the step's handle ends. */
export const MAX_CLONE_BLOCKS = 16384

/** One extent to move: where its entry lives (the inode's root, or a leaf block) and its slot there. */
interface Move {
  leaf: number | undefined
  slot: number
  extent: Extent
}

/** A shared tree node to copy: the index entry naming it (in the root, or in an index block) and its slot there. */
interface NodeCopy {
  parent: number | undefined
  slot: number
  index: ExtentIndex
}

interface Shared {
  moves: Move[]
  nodes: NodeCopy[]
}

function overlaps(runs: ReadonlyArray<[number, number]>, first: number, count: number): boolean {
  return runs.some(([b, n]) => b < first + count && first < b + n)
}

/** runs with block taken out. */
function withoutBlock(runs: ReadonlyArray<[number, number]>, block: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const [b, n] of runs) {
    if (block < b || block >= b + n) out.push([b, n])
    else {
      if (block > b) out.push([b, block - b])
      if (block + 1 < b + n) out.push([block + 1, b + n - block - 1])
    }
  }
  return out
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

/** The extents and tree nodes of ino that touch its shared runs, or why they cannot be moved. */
async function sharedParts(ctx: FsckContext, ino: number, runs: ReadonlyArray<[number, number]>): Promise<Shared | string> {
  const inode = await ctx.img.readInode(ino)
  if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) return 'the inode is block-mapped'
  const out: Shared = { moves: [], nodes: [] }
  // Below a shared node everything is shared (the other owner reaches it through that node), though
  // the check, which does not descend into a block claimed before, could not say so.
  const visit = async (node: ExtentNode, at: number | undefined, underShared: boolean): Promise<void> => {
    if (node.header.depth === 0) {
      for (const [slot, e] of node.extents.entries()) if (underShared || overlaps(runs, e.start, e.len)) out.moves.push({ leaf: at, slot, extent: e })
      return
    }
    for (const [slot, ix] of node.indexes.entries()) {
      // Parents first: a copied node's entries are then rewritten in the copy.
      const shared = underShared || overlaps(runs, ix.leaf, 1)
      if (shared) out.nodes.push({ parent: at, slot, index: ix })
      const child = decodeExtentNode(await ctx.img.readBlocks(ix.leaf, 1, `inode ${ino} extent block`), ctx.img.blockSize, `inode ${ino} extent block ${ix.leaf}`)
      await visit(child, ix.leaf, shared)
    }
  }
  try {
    await visit(decodeExtentNode(inode.block, I_BLOCK_SIZE, `inode ${ino} extent root`), undefined, false)
    return out
  } catch (err) {
    return errText(err)
  }
}

/** Set a tree block's checksum tail for ino (no-op without metadata_csum). */
function setNodeCsum(ctx: FsckContext, buf: Buffer, block: number, ino: number, generation: number): void {
  if (!ctx.csum) return
  const tail = extentTailOffset(decodeExtentNode(buf, ctx.img.blockSize, `extent block ${block}`).header)
  buf.writeUInt32LE(crc32cUpdate(inodeSeed(csumSeed(ctx.img.sb), ino, generation), buf.subarray(0, tail)), tail)
}

/**
 * Point the copied nodes' parents at the copies, then the moved extents at theirs: entries in the
 * root are rewritten in the inode record, the others in their block (a copied block's copy), whose
 * checksum is then set for this inode.
 */
async function repoint(ctx: FsckContext, h: MetaTxn, ino: number, { moves, nodes }: Shared, copyOf: ReadonlyMap<number, number>): Promise<boolean> {
  const entry = (slot: number): number => EXTENT_HEADER_SIZE + slot * EXTENT_ENTRY_SIZE
  const edits = [
    ...nodes.map((n) => ({ at: n.parent, slot: n.slot, bytes: encodeExtentIndex({ ...n.index, leaf: copyOf.get(n.index.leaf) ?? n.index.leaf }) })),
    ...moves.map((m) => ({ at: m.leaf, slot: m.slot, bytes: encodeExtent(m.extent) })),
  ]
  const inRoot = edits.filter((e) => e.at === undefined)
  if (inRoot.length > 0) {
    const ok = await updateInode(ctx, h, ino, (inode) => {
      for (const e of inRoot) e.bytes.copy(inode.block, entry(e.slot))
    })
    if (!ok) return false
  }
  const generation = (await ctx.img.readInode(ino)).generation
  const touched = new Set<number>(copyOf.values())
  for (const e of edits) {
    if (e.at === undefined) continue
    const block = copyOf.get(e.at) ?? e.at
    e.bytes.copy(await h.get(block), entry(e.slot))
    touched.add(block)
  }
  for (const block of touched) {
    setNodeCsum(ctx, await h.get(block), block, ino, generation)
    h.dirty(block)
  }
  return true
}

export async function cloneShared({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const reported = new Map<number, string>()
  for (const p of problems) if (p.code === 'BLOCK_MULTIPLY_CLAIMED' && p.ino !== undefined && !reported.has(p.ino)) reported.set(p.ino, p.message)
  if (reported.size === 0) return out
  const distrust = new Map<number, string>()
  for (const p of problems) {
    if (p.pass !== 1 || p.ino === undefined || !(p.code === 'INODE_CSUM' || p.code.startsWith('EXTENT_'))) continue
    // The checksum of a tree node it shares: right for the other owner only; the copy gets its own.
    const sharedNode = p.code === 'EXTENT_CSUM' && p.block !== undefined && overlaps(ctx.dupRuns.get(p.ino) ?? [], p.block, 1)
    if (!sharedNode) distrust.set(p.ino, p.code)
  }
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
    // Its extended attribute block, when shared, is copied by xattr.ts (with every inode naming it); the rest are extents' data and tree nodes.
    const acl = (await ctx.img.readInode(ino)).fileAcl
    const aclShared = acl !== 0 && overlaps(runs, acl, 1)
    const dataRuns = aclShared ? withoutBlock(runs, acl) : runs
    const parts: Shared | string = dataRuns.length === 0 ? { moves: [], nodes: [] } : await sharedParts(ctx, ino, dataRuns)
    if (typeof parts === 'string') {
      refuse(parts)
      continue
    }
    const { moves, nodes } = parts
    // A shared block outside the extents' data and the tree is not cloned here: nothing would change.
    const outside = dataRuns.find(([b, n]) => !moves.some((m) => overlaps([[b, n]], m.extent.start, m.extent.len)) && !nodes.some((x) => overlaps([[b, n]], x.index.leaf, 1)))
    if (outside !== undefined) {
      refuse(`shared block ${outside[0]} is neither in its extents' data nor its extent tree`)
      continue
    }
    const aclRefusal = aclShared ? xattrCloneRefusal(ctx, acl, problems) : undefined
    if (aclRefusal !== undefined) {
      refuse(aclRefusal)
      continue
    }
    const total = moves.reduce((n, m) => n + m.extent.len, 0) + nodes.length + (aclShared ? 1 : 0)
    if (total > budget) {
      refuse(`${total} blocks to copy, over the ${budget} left in this step`)
      continue
    }
    const copies: string[] = []
    const copyOf = new Map<number, number>()
    let why: string | undefined
    const bs = ctx.img.blockSize
    for (const n of nodes) {
      const to = freeRun(ctx, 1)
      if (to === undefined) {
        why = 'no free block for a copy of its extent tree block'
        break
      }
      ctx.blocks.set(to)
      ;(await ctx.img.readBlocks(n.index.leaf, 1, `inode ${ino} shared extent block`)).copy(h.fresh(to), 0, 0, bs)
      copyOf.set(n.index.leaf, to)
      copies.push(`extent block ${n.index.leaf} → ${to}`)
    }
    // The attribute block's copy first (a block taken now is not taken by the extents' runs), written after the extents are repointed.
    let aclTo: number | undefined
    if (aclShared && why === undefined) {
      aclTo = freeRun(ctx, 1)
      if (aclTo === undefined) why = 'no free block for a copy of its extended attribute block'
      else ctx.blocks.set(aclTo)
    }
    for (const m of why === undefined ? moves : []) {
      const to = freeRun(ctx, m.extent.len)
      if (to === undefined) {
        why = `no free run of ${m.extent.len} blocks`
        break
      }
      // The map first: the next extent's run must not land here.
      for (let i = 0; i < m.extent.len; i++) ctx.blocks.set(to + i)
      const data = await ctx.img.readBlocks(m.extent.start, m.extent.len, `inode ${ino} shared blocks`)
      for (let i = 0; i < m.extent.len; i++) data.copy(h.fresh(to + i), 0, i * bs, (i + 1) * bs)
      copies.push(`${m.extent.start}+${m.extent.len} → ${to}`)
      m.extent = { ...m.extent, start: to }
    }
    // Blocks already copied for this inode are unreferenced if it is refused: the pass 5 repair frees them.
    if (why !== undefined) {
      refuse(why)
      continue
    }
    if (!(await repoint(ctx, h, ino, parts, copyOf))) {
      refuse('the inode table is outside the file system')
      continue
    }
    if (aclTo !== undefined) {
      const users = await cloneXattrBlock(ctx, h, acl, aclTo)
      copies.push(`extended attribute block ${acl} → ${aclTo} for inode${users.length > 1 ? 's' : ''} ${users.join(' ')}`)
    }
    budget -= total
    out.push(fixed(1, 'BLOCKS_CLONED', `inode ${ino}: multiply-claimed blocks cloned (${copies.join(', ')})`, { ino }))
  }
  return out
}
