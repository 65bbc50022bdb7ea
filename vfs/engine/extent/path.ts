/*
 * A path from the root to the leaf responsible for one logical block, as the kernel's
 * ext4_find_extent builds it: at each level the last index whose key is <= the block (or the
 * first, when the block lies before every key). Each child must sit exactly one level below its
 * parent (readChild), so a damaged tree cannot make the descent loop.
 */
import { readChild, readRoot, writeNode } from './node.ts'
import type { TreeCtx, TreeNode } from './node.ts'

export interface TreePath {
  /** path[0] is the root, path[path.length - 1] the leaf. */
  nodes: TreeNode[]
  /** The leaf is responsible for logical blocks below this (the next index key on the way down), Infinity at the right edge. */
  bound: number
}

/** Index of the last entry whose key is <= lblk, or -1. */
export function lastAtOrBefore(entries: ReadonlyArray<{ block: number }>, lblk: number): number {
  let lo = 0
  let hi = entries.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((entries[mid]?.block ?? Infinity) <= lblk) lo = mid + 1
    else hi = mid
  }
  return lo - 1
}

/** Descend to the leaf for lblk. In the leaf, idx is the last extent starting at or before lblk (-1 if none). */
export async function findPath(c: TreeCtx, lblk: number): Promise<TreePath> {
  let node = readRoot(c)
  const nodes = [node]
  let bound = Infinity
  while (node.depth > 0) {
    node.idx = Math.max(0, lastAtOrBefore(node.indexes, lblk))
    const next = node.indexes[node.idx + 1]
    if (next !== undefined) bound = Math.min(bound, next.block)
    const ix = node.indexes[node.idx]
    // readRoot and readChild refuse index nodes without entries.
    if (ix === undefined) throw new RangeError(`inode ${c.ino}: empty extent index node at depth ${node.depth}`)
    node = await readChild(c, node, ix)
    nodes.push(node)
  }
  node.idx = lastAtOrBefore(node.extents, lblk)
  return { nodes, bound }
}

/**
 * The node at `level` now starts at `key`: e2fsck wants every index key equal to its child's
 * first key, so set it in the parent, and further up while the changed index is its node's first.
 */
export function setFirstKey(c: TreeCtx, p: TreePath, level: number, key: number): void {
  for (let l = level - 1; l >= 0; l--) {
    const parent = p.nodes[l]
    const ix = parent?.indexes[parent.idx]
    if (parent === undefined || ix === undefined || ix.block === key) return
    ix.block = key
    writeNode(c, parent)
    if (parent.idx !== 0) return
  }
}
