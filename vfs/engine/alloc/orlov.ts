/*
 * Which group a new inode goes to, after the kernel's ialloc.c: a file goes to its parent's group
 * (then a quadratic probe, then a linear scan), so a directory's files and their blocks sit
 * together; a directory is spread (Orlov): one under the root goes to a group with at least the
 * average free inodes and blocks and the fewest directories, so top-level trees start apart; a
 * deeper one stays near its parent unless that group is crowded with directories or short of room.
 */
import type { GroupSummary } from './group-table.ts'

export interface GroupChoice {
  groups: readonly GroupSummary[]
  freeInodes: number
  freeBlocks: number
  usedDirs: number
  inodesPerGroup: number
  blocksPerGroup: number
  /** Free blocks of group g that can be handed out now (busy ones excluded). */
  usable(g: number): number
  random(): number
}

/** A group with a free inode for a new inode of a parent in parentGroup, or undefined when none has one. */
export function chooseGroup(c: GroupChoice, parentGroup: number, isDir: boolean, underRoot: boolean): number | undefined {
  const n = c.groups.length
  const at = (i: number): GroupSummary => c.groups[i] as GroupSummary
  const hasInode = (g: number): boolean => at(g).freeInodes > 0
  const avgInodes = Math.floor(c.freeInodes / n)
  const avgBlocks = Math.floor(c.freeBlocks / n)
  if (isDir && underRoot) {
    let best: number | undefined
    const start = Math.floor(c.random() * n) % n
    for (let i = 0; i < n; i++) {
      const g = (start + i) % n
      const s = at(g)
      if (s.freeInodes < Math.max(1, avgInodes) || c.usable(g) < avgBlocks) continue
      if (best === undefined || s.usedDirs < at(best).usedDirs) best = g
    }
    if (best !== undefined) return best
  } else if (isDir) {
    const maxDirs = Math.floor(c.usedDirs / n) + Math.floor(c.inodesPerGroup / 16)
    const minInodes = Math.max(1, avgInodes - Math.floor(c.inodesPerGroup / 4))
    const minBlocks = Math.max(1, avgBlocks - Math.floor(c.blocksPerGroup / 4))
    for (let i = 0; i < n; i++) {
      const g = (parentGroup + i) % n
      const s = at(g)
      if (s.usedDirs < maxDirs && s.freeInodes >= minInodes && c.usable(g) >= minBlocks) return g
    }
    for (let i = 0; i < n; i++) {
      const g = (parentGroup + i) % n
      if (at(g).freeInodes >= Math.max(1, avgInodes)) return g
    }
  } else {
    if (hasInode(parentGroup) && c.usable(parentGroup) > 0) return parentGroup
    for (let i = 1; i < n; i *= 2) {
      const g = (parentGroup + i) % n
      if (hasInode(g) && c.usable(g) > 0) return g
    }
  }
  for (let i = 0; i < n; i++) {
    const g = (parentGroup + i) % n
    if (hasInode(g)) return g
  }
  return undefined
}
