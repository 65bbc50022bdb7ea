/*
 * The heap budget (common/heap-budget.ts) keeps V8's reserved heap near a bound while a process
 * allocates at a high rate: objects that live long enough to be promoted and then die, as a walk
 * of a large tree leaves cache entries in the server. Without it V8 lets the old generation grow
 * to several times what is live before it collects (bench/README.md, sessions 33 and 34).
 * Deterministic: the test drives the budget's check itself after each batch (no timer, no clock)
 * and compares the largest reserved heap seen with and without it.
 */
import t from 'tap'
import { getHeapStatistics } from 'node:v8'
import { setImmediate as turn } from 'node:timers/promises'
import { HeapBudget } from '../../common/heap-budget.ts'
import { collectGarbage } from '../../common/idle.ts'

const MiB = 1024 * 1024
const BUDGET = 96 * MiB
const HOUR = 3_600_000

interface Entry { i: number; pair: number[]; name: string }

/**
 * A ring of 200,000 live entries (about 20 MiB) replaced 20,000 at a time, 300 times: every entry
 * survives long enough to reach old space, then dies. `check` runs after each batch. Returns the
 * largest reserved heap seen.
 */
async function churn(check: () => void): Promise<number> {
  const ring: Entry[] = new Array<Entry>(200_000)
  let peak = 0
  let n = 0
  for (let batch = 0; batch < 300; batch++) {
    for (let j = 0; j < 20_000; j++, n++) ring[n % ring.length] = { i: n, pair: [n, n + 1], name: `n${String(n)}` }
    check()
    peak = Math.max(peak, getHeapStatistics().total_heap_size)
    // Let V8's own scheduled work (concurrent marking's finalization) run, as it would between requests.
    await turn()
  }
  return peak
}

t.test('a budget bounds the reserved heap that churn of promoted-then-dead objects grows', async (t) => {
  t.ok(collectGarbage(), 'this process can collect')
  const without = await churn(() => undefined)
  collectGarbage()
  const b = new HeapBudget({ bytes: BUDGET, intervalMs: HOUR })
  t.teardown(() => { b.stop() })
  const withBudget = await churn(() => { b.check() })
  t.comment(`largest reserved heap: ${String(Math.round(without / MiB))} MiB without a budget, ${String(Math.round(withBudget / MiB))} MiB with ${String(BUDGET / MiB)} MiB; ${String(b.stats.collections)} collections, ${b.stats.pauseMs.toFixed(0)} ms in all, longest ${b.stats.maxPauseMs.toFixed(0)} ms`)
  t.ok(without > BUDGET * 1.5, `without a budget the heap grew past 1.5× ${String(BUDGET / MiB)} MiB (${String(Math.round(without / MiB))} MiB)`)
  t.ok(b.stats.collections > 0, 'the budget collected')
  t.ok(b.stats.collections < 300, 'but not after every batch: a collection brings the heap back under budget')
  // Slack: one batch's growth (20,000 entries, ~2 MiB) plus the young generation V8 may grow meanwhile.
  t.ok(withBudget < BUDGET + 48 * MiB, `with the budget it stayed within ${String(BUDGET / MiB)} + 48 MiB (${String(Math.round(withBudget / MiB))} MiB)`)
})

t.test('the timer checks: a heap over a tiny budget is collected without being asked', async (t) => {
  const b = new HeapBudget({ bytes: 1 * MiB, intervalMs: 10 })
  t.teardown(() => { b.stop() })
  // Any heap exceeds 1 MiB: the first tick collects. Poll with a bound, no fixed sleep.
  for (let i = 0; i < 2_000 && b.stats.collections === 0; i++) await new Promise((resolve) => { setTimeout(resolve, 5) })
  t.ok(b.stats.collections >= 1, `the timer collected (${String(b.stats.collections)})`)
  t.ok(b.stats.maxPauseMs > 0 && b.stats.pauseMs >= b.stats.maxPauseMs, 'pauses are counted')
  const after = b.stats.collections
  b.stop()
  // Stopped: no more collections, whatever the heap.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => { setTimeout(resolve, 20) })
  t.equal(b.stats.collections, after, 'none after stop()')
})

t.test('a budget under the heap that is live does not loop: at most one collection per check', async (t) => {
  const b = new HeapBudget({ bytes: 1 * MiB, intervalMs: HOUR })
  t.teardown(() => { b.stop() })
  t.equal(b.check(), true, 'over budget: collected')
  t.equal(b.stats.collections, 1)
  t.equal(b.check(), true)
  t.equal(b.stats.collections, 2, 'one per check, never a loop')
  const none = new HeapBudget({ bytes: 64 * 1024 * MiB, intervalMs: HOUR })
  t.teardown(() => { none.stop() })
  t.equal(none.check(), false, 'under budget: nothing')
  t.equal(none.stats.collections, 0)
})
