/*
 * The shape of an indexed directory's htree (directory.rst, "Hash Tree
 * Directories"): a readable dx_root in block 0, interior nodes exactly
 * indirect_levels deep, count <= limit and limit what the block holds, hashes
 * in order, every child inside the directory, and every other block a leaf
 * named by exactly one index entry. Names are not re-hashed here: whether a
 * leaf's names fall in its hash range needs the hash functions (dx-hash).
 */
import { hasFeature } from '../format/features.ts'
import { decodeDxNode, decodeDxRoot, DX_TAIL_SIZE } from '../format/dirent.ts'
import type { DxEntry } from '../format/dirent.ts'
import type { DirInfo, FsckContext } from './context.ts'
import { errText } from './problems.ts'

const DX_ROOT_ENTRIES = 0x20
const DX_NODE_ENTRIES = 0x8
const DX_ENTRY_SIZE = 8
/** The largest hash version a directory may name without casefold (siphash needs it). */
const DX_HASH_MAX = 5

/** Logical → physical block of a directory, from its extents (sorted here), clipped to nblocks. */
export interface DirMap {
  runs: Array<[number, number, number]>
  pblkOf(lblk: number): number | undefined
}

export function dirBlockMap(dir: DirInfo, nblocks: number): DirMap {
  const runs = dir.extents
    .filter(([l]) => l < nblocks)
    .map(([l, p, n]): [number, number, number] => [l, p, Math.min(n, nblocks - l)])
    .sort((a, b) => a[0] - b[0])
  return {
    runs,
    pblkOf(lblk) {
      let lo = 0
      let hi = runs.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        const run = runs[mid]
        if (run === undefined) break
        if (lblk < run[0]) hi = mid
        else if (lblk >= run[0] + run[2]) lo = mid + 1
        else return run[1] + (lblk - run[0])
      }
      return undefined
    },
  }
}

export interface HtreeShape {
  /** Logical blocks holding the root and the interior nodes. */
  nodes: Set<number>
}

/** Walk the htree of directory ino; undefined when its root cannot be read (the directory is then read as linear). */
export async function checkHtree(ctx: FsckContext, ino: number, dir: DirInfo, map: DirMap, nblocks: number): Promise<HtreeShape | undefined> {
  const r = ctx.report
  const bs = ctx.img.blockSize
  const tail = ctx.csum ? DX_TAIL_SIZE : 0
  const rootBlock = map.pblkOf(0)
  if (rootBlock === undefined) return undefined
  let root
  try {
    root = decodeDxRoot(await ctx.img.readBlocks(rootBlock, 1, `directory ${ino}`), bs, hasFeature(ctx.img.sb, 'incompat', 'large_dir'), `directory ${ino} htree root`)
  } catch (err) {
    r.add(2, 'HTREE_BAD_ROOT', errText(err), { ino, block: rootBlock })
    return undefined
  }
  if (root.hashVersion > DX_HASH_MAX) r.add(2, 'HTREE_BAD_ROOT', `directory ${ino}: htree hash version ${root.hashVersion}`, { ino, block: rootBlock })
  const rootLimit = (bs - DX_ROOT_ENTRIES - tail) / DX_ENTRY_SIZE
  if (root.limit !== rootLimit) r.add(2, 'HTREE_BAD_LIMIT', `directory ${ino}: htree root limit ${root.limit}, the block holds ${rootLimit}`, { ino, block: rootBlock })
  const nodeLimit = (bs - DX_NODE_ENTRIES - tail) / DX_ENTRY_SIZE
  const nodes = new Set<number>([0])
  const leafRefs = new Map<number, number>()

  const visit = async (entries: DxEntry[], level: number, where: string): Promise<void> => {
    for (const [i, e] of entries.entries()) {
      const prev = entries[i - 1]
      if (prev !== undefined && i > 1 && e.hash < prev.hash) r.add(2, 'HTREE_BAD_ORDER', `directory ${ino} ${where}: hash 0x${e.hash.toString(16)} after 0x${prev.hash.toString(16)}`, { ino })
      if (e.block === 0 || e.block >= nblocks || map.pblkOf(e.block) === undefined) {
        r.add(2, 'HTREE_BAD_BLOCK', `directory ${ino} ${where}: entry ${i} names block ${e.block}, not a block of the directory (${nblocks})`, { ino })
        continue
      }
      if (level === root.indirectLevels) {
        leafRefs.set(e.block, (leafRefs.get(e.block) ?? 0) + 1)
        continue
      }
      if (nodes.has(e.block)) {
        r.add(2, 'HTREE_BAD_BLOCK', `directory ${ino} ${where}: interior block ${e.block} named twice`, { ino })
        continue
      }
      nodes.add(e.block)
      const pblk = map.pblkOf(e.block) ?? 0
      let node
      try {
        node = decodeDxNode(await ctx.img.readBlocks(pblk, 1, `directory ${ino}`), bs, `directory ${ino} htree node ${e.block}`)
      } catch (err) {
        r.add(2, 'HTREE_BAD_NODE', errText(err), { ino, block: pblk })
        continue
      }
      if (node.limit !== nodeLimit) r.add(2, 'HTREE_BAD_LIMIT', `directory ${ino}: htree node ${e.block} limit ${node.limit}, the block holds ${nodeLimit}`, { ino, block: pblk })
      await visit(node.entries, level + 1, `htree node ${e.block}`)
    }
  }
  await visit(root.entries, 0, 'htree root')

  for (const [l, , n] of map.runs) {
    for (let lblk = Math.max(l, 1); lblk < l + n; lblk++) {
      if (nodes.has(lblk)) {
        if (leafRefs.has(lblk)) r.add(2, 'HTREE_BAD_BLOCK', `directory ${ino}: block ${lblk} is both an htree node and a leaf`, { ino })
        continue
      }
      const refs = leafRefs.get(lblk) ?? 0
      if (refs !== 1) r.add(2, refs === 0 ? 'HTREE_UNREFERENCED' : 'HTREE_BAD_BLOCK', `directory ${ino}: leaf block ${lblk} named by ${refs} htree entries`, { ino })
    }
  }
  return { nodes }
}
