/*
 * Removing the logical range [from, to) from a tree (truncate and punch), one leaf at a time as
 * the kernel's ext4_ext_remove_space does: the data blocks of every extent part in the range go
 * back to the allocator (unwritten ones too: they are allocated), a leaf left empty is freed and
 * its index removed (up the tree while nodes empty), and a tree that fits in i_block again moves
 * back into the root, one level at a time.
 */
import type { Extent } from '../format/extent.ts'
import { addBlocks } from './i-blocks.ts'
import { insertAt, release, reserve } from './insert.ts'
import { entryCount, readChild, readRoot, ROOT_MAX, writeNode } from './node.ts'
import type { TreeCtx } from './node.ts'
import { findPath, setFirstKey } from './path.ts'
import type { TreePath } from './path.ts'

export async function removeRange(c: TreeCtx, from: number, to: number): Promise<void> {
  let pos = from
  while (pos < to) {
    const p = await findPath(c, pos)
    const end = Math.min(to, p.bound)
    await removeInLeaf(c, p, pos, end)
    pos = end
  }
  await collapse(c)
}

async function freeData(c: TreeCtx, start: number, count: number): Promise<void> {
  await c.allocator.freeBlocks(c.h, start, count, false)
  addBlocks(c.inode, c.blockSize, c.hugeFile, -count)
}

/** Remove [from, to) from the path's leaf, which is responsible for all of it. */
async function removeInLeaf(c: TreeCtx, p: TreePath, from: number, to: number): Promise<void> {
  const level = p.nodes.length - 1
  const leaf = p.nodes[level]
  if (leaf === undefined) throw new RangeError('empty path')
  const oldFirst = leaf.extents[0]?.block
  const kept: Extent[] = []
  const freed: Array<[number, number]> = []
  let changed = false
  for (const e of leaf.extents) {
    const eEnd = e.block + e.len
    if (eEnd <= from || e.block >= to) {
      kept.push(e)
      continue
    }
    changed = true
    const cutStart = Math.max(e.block, from)
    const cutEnd = Math.min(eEnd, to)
    freed.push([e.start + (cutStart - e.block), cutEnd - cutStart])
    if (e.block < cutStart) kept.push({ ...e, len: cutStart - e.block })
    if (cutEnd < eEnd) kept.push({ block: cutEnd, len: eEnd - cutEnd, start: e.start + (cutEnd - e.block), uninit: e.uninit })
  }
  if (!changed) return
  if (kept.length > leaf.max) {
    await punchMiddle(c, p, level, from, to)
    return
  }
  leaf.extents = kept
  const first = kept[0]
  if (first === undefined && level > 0) await removeNode(c, p, level)
  else {
    writeNode(c, leaf)
    if (first !== undefined && first.block !== oldFirst) setFirstKey(c, p, level, first.block)
  }
  for (const [start, count] of freed) await freeData(c, start, count)
}

/**
 * One extent of a full leaf loses its middle: the tail becomes a new entry, which may split the
 * leaf, so its blocks are reserved before the extent is shortened.
 */
async function punchMiddle(c: TreeCtx, p: TreePath, level: number, from: number, to: number): Promise<void> {
  const leaf = p.nodes[level]
  const i = leaf === undefined ? -1 : leaf.extents.findIndex((e) => e.block < from && e.block + e.len > to)
  const e = leaf?.extents[i]
  if (leaf === undefined || e === undefined) throw new RangeError('a leaf overflowed without a middle punch')
  const pool = await reserve(c, p, level, e.start)
  const tail: Extent = { block: to, len: e.block + e.len - to, start: e.start + (to - e.block), uninit: e.uninit }
  const freedStart = e.start + (from - e.block)
  e.len = from - e.block
  leaf.idx = i
  await insertAt(c, p, level, i + 1, tail, pool)
  await release(c, pool)
  await freeData(c, freedStart, to - from)
}

/** The node at `level` (below the root) is empty: free its block and drop its index from the parent. */
async function removeNode(c: TreeCtx, p: TreePath, level: number): Promise<void> {
  const node = p.nodes[level]
  const parent = p.nodes[level - 1]
  if (node === undefined || parent === undefined) throw new RangeError(`no node to remove at level ${level}`)
  await c.allocator.freeBlocks(c.h, node.block, 1, true)
  addBlocks(c.inode, c.blockSize, c.hugeFile, -1)
  parent.indexes.splice(parent.idx, 1)
  const first = parent.indexes[0]
  if (first === undefined) {
    if (level - 1 > 0) {
      await removeNode(c, p, level - 1)
      return
    }
    // The root lost its last index: the file has no blocks left, the tree is an empty leaf again.
    parent.depth = 0
    parent.extents = []
    writeNode(c, parent)
    return
  }
  writeNode(c, parent)
  if (parent.idx === 0) setFirstKey(c, p, level - 1, first.block)
}

/** While the root has one child whose entries fit in i_block, pull them up and free the child. */
async function collapse(c: TreeCtx): Promise<void> {
  for (;;) {
    const root = readRoot(c)
    const only = root.indexes[0]
    if (root.depth === 0 || root.indexes.length !== 1 || only === undefined) return
    const child = await readChild(c, root, only)
    if (entryCount(child) > ROOT_MAX) return
    root.depth = child.depth
    root.indexes = child.indexes
    root.extents = child.extents
    writeNode(c, root)
    await c.allocator.freeBlocks(c.h, child.block, 1, true)
    addBlocks(c.inode, c.blockSize, c.hugeFile, -1)
  }
}
