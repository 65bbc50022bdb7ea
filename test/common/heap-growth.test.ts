/*
 * setHeapGrowth (common/heap-growth.ts) fixes V8's heap growing factor: under churn of objects that
 * live long enough to be promoted and then die (the entries of bounded caches while a walk of a
 * large tree passes through them), V8's own factor lets the reserved heap grow to several times
 * what is live; at 1 + 20/100 it stays near it. The same churn runs first with V8's own factor
 * (this process has not set the flag), then with the factor fixed, and the largest reserved heaps
 * are compared. Deterministic workload (no clock, no randomness).
 */
import t from 'tap'
import { getHeapStatistics } from 'node:v8'
import { setImmediate as turn } from 'node:timers/promises'
import { heapGrowth, setHeapGrowth } from '../../common/heap-growth.ts'
import { collectGarbage } from '../../common/idle.ts'

const MiB = 1024 * 1024

interface Entry { i: number; pair: number[]; name: string }

/**
 * A ring of 200,000 live entries (about 20 MiB) replaced 20,000 at a time, 300 times: every entry
 * survives long enough to reach old space, then dies. Returns the largest reserved heap seen.
 */
async function churn(): Promise<number> {
  const ring: Entry[] = new Array<Entry>(200_000)
  let peak = 0
  let n = 0
  for (let batch = 0; batch < 300; batch++) {
    for (let j = 0; j < 20_000; j++, n++) ring[n % ring.length] = { i: n, pair: [n, n + 1], name: `n${String(n)}` }
    peak = Math.max(peak, getHeapStatistics().total_heap_size)
    // Let V8's own scheduled work (concurrent marking's finalization) run, as it would between requests.
    await turn()
  }
  return peak
}

t.test('a fixed growing factor keeps the reserved heap near what is live under churn', async (t) => {
  t.teardown(() => { setHeapGrowth(0) })
  t.equal(heapGrowth(), 0, 'V8\'s own factor until set')
  t.ok(collectGarbage(), 'this process can collect')
  const own = await churn()
  collectGarbage()
  setHeapGrowth(20)
  t.equal(heapGrowth(), 20)
  // The next full collection computes the old generation's limit with the new factor.
  collectGarbage()
  const fixed = await churn()
  t.comment(`largest reserved heap: ${String(Math.round(own / MiB))} MiB with V8's own factor, ${String(Math.round(fixed / MiB))} MiB at 20 %`)
  t.ok(own > 120 * MiB, `V8's own factor let the heap grow past 120 MiB (${String(Math.round(own / MiB))} MiB)`)
  // Live: ~20 MiB of entries and the young generation's 32 MiB; 20 % and V8's minimum step on top.
  t.ok(fixed < own * 0.7, `at 20 % the heap stayed under 0.7× that (${String(Math.round(fixed / MiB))} MiB)`)
})

t.test('a bad percentage is refused', (t) => {
  t.throws(() => { setHeapGrowth(-1) }, new RangeError('heap growth: not a whole percentage: -1'))
  t.throws(() => { setHeapGrowth(1.5) }, new RangeError('heap growth: not a whole percentage: 1.5'))
  t.equal(heapGrowth(), 0, 'nothing set')
  t.end()
})
