/*
 * The dispatcher under a quick sample of hostile records (the long run is
 * bench/fuzz.ts): captured calls of every procedure with minted handles,
 * mutated by bit flips, cuts, appended bytes, overwritten words (huge counts,
 * opaque lengths), 100k-long TRUE-marker lists, mutated headers and random
 * words; NLM (versions 1, 3, 4) and NSM calls among them, most well-formed
 * with few owners and ranges so that they meet in the lock table
 * (lock-calls.ts). Never a throw or hang, never a malformed reply, no
 * handler fault, and the heap stays bounded. Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { DispatchFuzzer, ROOT_CRED, caseArbitrary, record } from './dispatch-fuzzer.ts'
import { heapAfterGc } from './fuzz-run.ts'

const RUNS = 3000
const SEED = 0x7_5eed
/** Growth of the heap over the run, after a full GC, that still counts as bounded. */
const HEAP_BOUND = 64 * 1024 * 1024

const heap = heapAfterGc

t.test('captured calls answer SUCCESS unmutated', async (t) => {
  const f = await DispatchFuzzer.create()
  t.teardown(() => f.close())
  t.ok(f.seeds.length >= 40, `${String(f.seeds.length)} captured calls`)
  for (const s of f.seeds) {
    const out = await f.run(record(1, s.proc.prog, s.proc.vers, s.proc.proc, ROOT_CRED, s.args), 'tcp')
    t.equal(out.kind, 'SUCCESS', s.name)
  }
})

t.test(`${String(RUNS)} mutated records through the dispatcher`, async (t) => {
  const f = await DispatchFuzzer.create()
  t.teardown(() => f.close())
  const before = heap()
  const result = await fc.check(
    fc.asyncProperty(caseArbitrary(f), async (c) => (await f.run(c.rec, c.transport)).ok),
    { numRuns: RUNS, seed: SEED },
  )
  const after = heap()
  t.notOk(result.failed, result.failed ? (fc.defaultReportMessage(result) ?? '') + `\nfirst: ${f.tally.firstFailure ?? ''}` : 'every reply well-formed')
  t.equal(f.tally.internalErrors, 0, 'no handler threw and no encoder failed (nothing logged as an error)')
  t.ok(after - before < HEAP_BOUND, `heap grew ${String(Math.round((after - before) / 1024))} KiB (bound ${String(HEAP_BOUND / 1024 / 1024)} MiB)`)
  const kinds = f.tally.byKind
  t.ok((kinds.SUCCESS ?? 0) > RUNS / 10, `reached the handlers: ${JSON.stringify(kinds)}`)
  t.ok((kinds.GARBAGE_ARGS ?? 0) > 0, 'and the decoders rejected some')
  // The lock calls reached the lock table and met each other there: granted, refused by a conflict, queued.
  const locks = f.tally.lockStats
  for (const stat of ['NLM4_GRANTED', 'NLM4_DENIED', 'NLM4_BLOCKED']) t.ok((locks[stat] ?? 0) > 0, `the lock manager answered ${stat}: ${JSON.stringify(locks)}`)
})
