/*
 * The crash checker's tree judgement (crash-check.ts): a recovered image's tree must equal the
 * model after j operations for some acked ≤ j ≤ issued, with ordered mode's one allowance for the
 * operation in flight (see crash-check.ts's header): an overwrite, or a shrinking truncate's zeroed
 * tail, may have reached its file sector by sector before its transaction committed.
 */
import type { TreeDump } from './engine-helpers.ts'
import { canon } from './crash-record.ts'
import type { WorkloadLog } from './crash-record.ts'

/** Why the dump of a state matches no model between acked and issued ('' when it matches one). */
export function compare(rc: WorkloadLog, j0: number, j1: number, got: { dump: TreeDump | undefined; files: Map<string, Buffer> }): string {
  const gotText = canon(got.dump)
  for (let j = j0; j <= j1; j++) {
    if (canon(rc.models[j]) === gotText) return ''
    // An overwrite in flight (op j): its file may hold old or new bytes, sector by sector.
    const ow = rc.overwrites.get(j)
    const op = rc.ops[j]
    if (ow === undefined || op?.overwrite === undefined || got.dump === undefined) continue
    const want = rc.models[j]!
    const file = op.overwrite
    const mine = got.files.get(file)
    if (mine === undefined || mine.length !== ow.before.length) continue
    // The file and its hard links (same content in the model) compare without content.
    const links = new Set(Object.keys(want).filter((k) => want[k]?.content === want[file]?.content))
    const strip = (d: TreeDump): string => canon(Object.fromEntries(Object.entries(d).map(([k, e]) => [k, links.has(k) ? { ...e, content: '' } : e])))
    if (strip(got.dump) !== strip(want)) continue
    let mixed = true
    for (let s = 0; s < mine.length && mixed; s += 512) {
      // Up to the old size only: an overwrite that extends the file has more bytes after it.
      const end = Math.min(s + 512, mine.length)
      const a = mine.subarray(s, end)
      mixed = a.equals(ow.before.subarray(s, end)) || a.equals(ow.after.subarray(s, end))
    }
    if (mixed) return ''
  }
  const first = rc.models[j0]!
  const diff = Object.keys({ ...first, ...got.dump }).filter((k) => JSON.stringify(first[k]) !== JSON.stringify(got.dump?.[k])).slice(0, 6)
  return `tree matches no model after ${j0}…${j1} ops (differs from ${j0} at ${diff.join(' ')})`
}
