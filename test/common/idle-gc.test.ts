/*
 * collectGarbage() gives V8's heap back, not only its garbage: after a burst of small objects
 * that lived long enough to reach the old generation and then died (what a walk of a large tree
 * leaves in the server: decoded inodes, attributes and handles evicted from bounded caches), the
 * heap V8 keeps reserved must fall back near what is in use. One collection frees the objects
 * but keeps every page that still holds a survivor, and gives the emptied ones back only at a next
 * collection (bench/README.md, session 33).
 */
import t from 'tap'
import { collectGarbage } from '../../common/idle.ts'

const MiB = 1024 * 1024

t.test('an idle collection returns the old generation that a burst of dead objects grew', async (t) => {
  // Warm the collector (its first call sets up the gc function) and start from a settled heap.
  t.ok(collectGarbage(), 'this process can collect')
  const base = process.memoryUsage().heapTotal
  // Objects that survive a collection (promoted to old space, as cached entries are), then die
  // when this function returns, all but every 8th: the survivors are spread over every page.
  const burst = (): { kept: unknown[]; grown: number } => {
    const all: Array<{ i: number; pair: number[]; name: string }> = []
    for (let i = 0; i < 1_500_000; i++) all.push({ i, pair: [i, i + 1], name: `n${String(i)}` })
    collectGarbage()
    return { kept: all.filter((_, i) => i % 8 === 0), grown: process.memoryUsage().heapTotal }
  }
  const { kept, grown } = burst()
  t.ok(grown - base > 100 * MiB, `the burst grew the heap: ${String(Math.round(base / MiB))} → ${String(Math.round(grown / MiB))} MiB`)
  collectGarbage()
  const after = process.memoryUsage()
  t.comment(`after the idle collection: ${String(Math.round(after.heapTotal / MiB))} MiB reserved, ${String(Math.round(after.heapUsed / MiB))} MiB used, ${String(kept.length)} objects kept`)
  // What stays reserved is the live heap (the kept eighth, compacted), not the pages the burst grew.
  t.ok(after.heapTotal - base < (grown - base) / 2, `the heap gave back at least half of what the burst grew (reserved ${String(Math.round(after.heapTotal / MiB))} MiB)`)
})
