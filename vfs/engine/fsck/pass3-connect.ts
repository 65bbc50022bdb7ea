/*
 * Pass 3, connectivity: every directory must be reachable from the root by
 * the entries pass 2 found, its '..' must name the directory that holds it,
 * and the root must hold lost+found. Each directory is walked up its parent
 * chain once: the chain ends at the root (reachable), at a directory already
 * judged, or at a directory without a parent or in a loop (unconnected).
 */
import { S_IFDIR } from '../format/inode.ts'
import { ROOT_INO } from '../reader/image.ts'
import type { FsckContext } from './context.ts'

export function checkConnectivity(ctx: FsckContext): void {
  const r = ctx.report
  const root = ctx.dirs.get(ROOT_INO)
  if (root === undefined) {
    r.add(3, 'ROOT_MISSING', 'the root directory (inode 2) is missing or unreadable', { ino: ROOT_INO })
    return
  }
  if (root.dotdot !== ROOT_INO) r.add(3, 'DOTDOT_WRONG', `the root's '..' is ${root.dotdot}, not 2`, { ino: ROOT_INO })
  const reachable = new Set<number>([ROOT_INO])
  const lost = new Set<number>()
  for (const ino of ctx.dirs.keys()) {
    const path: number[] = []
    const onPath = new Set<number>()
    let cur = ino
    while (!reachable.has(cur) && !lost.has(cur) && !onPath.has(cur)) {
      path.push(cur)
      onPath.add(cur)
      const parent = ctx.dirs.get(cur)?.parent ?? 0
      if (parent === 0) break
      cur = parent
    }
    if (reachable.has(cur)) {
      for (const d of path) reachable.add(d)
      continue
    }
    const top = path[path.length - 1]
    if (top !== undefined && !lost.has(cur)) {
      const parent = ctx.dirs.get(top)?.parent ?? 0
      r.add(3, 'DIR_UNCONNECTED', `directory ${top} is not reachable from the root (${parent === 0 ? 'no entry names it' : 'its parents form a loop'}; '..' is ${ctx.dirs.get(top)?.dotdot ?? 0})`, { ino: top })
    }
    for (const d of path) lost.add(d)
  }
  for (const d of reachable) {
    const dir = ctx.dirs.get(d)
    if (d === ROOT_INO || dir === undefined) continue
    if (dir.dotdot !== dir.parent) r.add(3, 'DOTDOT_WRONG', `directory ${d}: '..' is ${dir.dotdot}, its entry is in ${dir.parent}`, { ino: d })
  }
  if (ctx.lostFound === 0) r.add(3, 'NO_LOST_FOUND', '/lost+found not found', { ino: ROOT_INO })
  else if (ctx.types[ctx.lostFound] !== S_IFDIR >> 12) r.add(3, 'LOST_FOUND_NOT_DIR', `/lost+found (inode ${ctx.lostFound}) is not a directory`, { ino: ctx.lostFound })
}
