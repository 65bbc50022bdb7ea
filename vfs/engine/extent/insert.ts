/*
 * Putting an extent into a hole of the tree: merged into a neighbour in the same leaf when they
 * continue each other logically and physically (as ext4_ext_try_to_merge, up to 32768 initialized
 * or 32767 unwritten blocks), else inserted; a full node splits into a new block, and a full root
 * moves its entries into a new block below it (the tree grows one level, up to depth 5).
 *
 * Every tree block an insertion can need is allocated before anything changes (reserve), so
 * ENOSPC leaves the tree as it was instead of half split.
 */
import { VfsError } from '../../errors.ts'
import { corrupt } from '../format/errors.ts'
import { EXT4_MAX_EXTENT_DEPTH, EXT_INIT_MAX_LEN } from '../format/extent.ts'
import type { Extent, ExtentIndex } from '../format/extent.ts'
import { addBlocks } from './i-blocks.ts'
import { entryCount, firstKey, freshNode, writeNode } from './node.ts'
import type { TreeCtx } from './node.ts'
import { findPath, setFirstKey } from './path.ts'
import type { TreePath } from './path.ts'

/** Longest unwritten extent: the length field above 32768 marks it, so 65535 - 32768. */
export const EXT_UNWRITTEN_MAX_LEN = EXT_INIT_MAX_LEN - 1

export function maxLen(uninit: boolean): number {
  return uninit ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN
}

function continues(a: Extent, b: Extent): boolean {
  return a.uninit === b.uninit && a.block + a.len === b.block && a.start + a.len === b.start && a.len + b.len <= maxLen(a.uninit)
}

/** Insert e, which must lie in a hole (between the extents around it, and inside its leaf's range); `found` is the path to e.block when the caller has it. */
export async function insertExtent(c: TreeCtx, e: Extent, found?: TreePath): Promise<void> {
  const p = found ?? (await findPath(c, e.block))
  const level = p.nodes.length - 1
  const leaf = p.nodes[level]
  if (leaf === undefined) throw new RangeError('empty path')
  const i = leaf.idx
  const left = leaf.extents[i]
  const right = leaf.extents[i + 1]
  if ((left !== undefined && left.block + left.len > e.block) || (right !== undefined && e.block + e.len > right.block) || e.block + e.len > p.bound) {
    // A hole the caller found from this very path: only a tree that contradicts itself gets here.
    throw corrupt(`inode ${c.ino}: extent tree around logical block ${e.block} overlaps itself`)
  }
  if (left !== undefined && continues(left, e)) {
    left.len += e.len
    if (right !== undefined && continues(left, right)) {
      left.len += right.len
      leaf.extents.splice(i + 1, 1)
    }
    writeNode(c, leaf)
    return
  }
  if (right !== undefined && continues(e, right)) {
    right.block = e.block
    right.start = e.start
    right.len += e.len
    writeNode(c, leaf)
    if (i + 1 === 0) setFirstKey(c, p, level, e.block)
    return
  }
  const pool = await reserve(c, p, level, e.start)
  await insertAt(c, p, level, i + 1, e, pool)
  await release(c, pool)
}

/**
 * Allocate the blocks an insertion at `level` needs: one per full node from there up, and one
 * more when the root is full too (it grows). Counted in i_blocks at once.
 */
export async function reserve(c: TreeCtx, p: TreePath, level: number, goal: number): Promise<number[]> {
  let l = level
  for (let n = p.nodes[l]; n !== undefined && entryCount(n) >= n.max; n = p.nodes[--l]);
  const need = level - l
  if (need === 0) return []
  if (l < 0 && (p.nodes[0]?.depth ?? 0) + 1 > EXT4_MAX_EXTENT_DEPTH) throw new VfsError('EFBIG', `inode ${c.ino}: extent tree would exceed depth ${EXT4_MAX_EXTENT_DEPTH}`)
  addBlocks(c.inode, c.blockSize, c.hugeFile, need)
  const pool: number[] = []
  try {
    while (pool.length < need) {
      const got = await c.allocator.allocBlocks(c.h, goal, need - pool.length)
      for (let b = got.start; b < got.start + got.count && pool.length < need; b++) pool.push(b)
    }
  } catch (err) {
    addBlocks(c.inode, c.blockSize, c.hugeFile, -need)
    for (const b of pool) await c.allocator.freeBlocks(c.h, b, 1, true)
    throw err
  }
  return pool
}

/** Give back reserved blocks an insertion did not use (none, when reserve counted right). */
export async function release(c: TreeCtx, pool: number[]): Promise<void> {
  for (const b of pool.splice(0)) {
    await c.allocator.freeBlocks(c.h, b, 1, true)
    addBlocks(c.inode, c.blockSize, c.hugeFile, -1)
  }
}

function take(pool: number[]): number {
  const b = pool.shift()
  if (b === undefined) throw new RangeError('extent insertion needed more blocks than reserved')
  return b
}

type Entry = Extent | ExtentIndex

function keyOf(e: Entry): number {
  return e.block
}

/** Insert entry at position pos of the node at `level` of the path, splitting or growing as needed. */
export async function insertAt(c: TreeCtx, p: TreePath, level: number, pos: number, entry: Entry, pool: number[]): Promise<void> {
  const node = p.nodes[level]
  if (node === undefined) throw new RangeError(`no node at level ${level}`)
  const entries: Entry[] = node.depth > 0 ? node.indexes : node.extents
  if (entries.length < node.max) {
    entries.splice(pos, 0, entry)
    writeNode(c, node)
    if (pos === 0) setFirstKey(c, p, level, keyOf(entry))
    return
  }
  if (level === 0) {
    // Grow: the root's entries move into a new block one level down; the root keeps one index to it.
    const child = freshNode(c, take(pool), node.depth)
    child.indexes = node.indexes
    child.extents = node.extents
    child.idx = node.idx
    node.depth++
    node.indexes = [{ block: firstKey(child) ?? keyOf(entry), leaf: child.block }]
    node.extents = []
    node.idx = 0
    writeNode(c, child)
    writeNode(c, node)
    p.nodes.splice(1, 0, child)
    await insertAt(c, p, 1, pos, entry, pool)
    return
  }
  // Split: an append starts a new node of its own (files grow at the end); otherwise halves.
  const right = freshNode(c, take(pool), node.depth)
  const moved = pos === entries.length ? [] : entries.splice(entries.length >> 1)
  const mid = entries.length
  if (pos <= mid && moved.length > 0) entries.splice(pos, 0, entry)
  else moved.splice(pos - mid, 0, entry)
  if (node.depth > 0) right.indexes = moved as ExtentIndex[]
  else right.extents = moved as Extent[]
  writeNode(c, node)
  writeNode(c, right)
  if (pos === 0) setFirstKey(c, p, level, keyOf(entry))
  const parent = p.nodes[level - 1]
  const key = firstKey(right)
  if (parent === undefined || key === undefined) throw new RangeError('split without a parent')
  await insertAt(c, p, level - 1, parent.idx + 1, { block: key, leaf: right.block }, pool)
}
