/*
 * Unwritten extents becoming written (a write into space fallocate reserved, as the kernel's
 * ext4_ext_convert_to_initialized): the written range is cut out of its extents at both ends,
 * then the unwritten extents inside it flip their flag in place. Each cut is a complete tree
 * change of its own, with its tree blocks reserved first, so ENOSPC part way leaves a consistent
 * tree (split further than needed, the range still unwritten) and never loses an extent.
 */
import { insertAt, release, reserve } from './insert.ts'
import { writeNode } from './node.ts'
import type { TreeCtx } from './node.ts'
import { findPath } from './path.ts'

/** Make lblk the first block of an extent when it falls strictly inside one. */
async function splitAt(c: TreeCtx, lblk: number): Promise<void> {
  const p = await findPath(c, lblk)
  const level = p.nodes.length - 1
  const leaf = p.nodes[level]
  const e = leaf?.extents[leaf.idx]
  if (leaf === undefined || e === undefined || e.block === lblk || lblk >= e.block + e.len || !e.uninit) return
  const pool = await reserve(c, p, level, e.start)
  const tail = { block: lblk, len: e.block + e.len - lblk, start: e.start + (lblk - e.block), uninit: e.uninit }
  e.len = lblk - e.block
  await insertAt(c, p, level, leaf.idx + 1, tail, pool)
  await release(c, pool)
}

export async function convertToWritten(c: TreeCtx, from: number, to: number): Promise<void> {
  await splitAt(c, from)
  await splitAt(c, to)
  let pos = from
  while (pos < to) {
    const p = await findPath(c, pos)
    const leaf = p.nodes[p.nodes.length - 1]
    if (leaf === undefined) return
    const e = leaf.extents[leaf.idx]
    if (e !== undefined && pos < e.block + e.len) {
      if (e.uninit) {
        e.uninit = false
        writeNode(c, leaf)
      }
      pos = e.block + e.len
      continue
    }
    pos = Math.min(leaf.extents[leaf.idx + 1]?.block ?? Infinity, p.bound)
  }
}
