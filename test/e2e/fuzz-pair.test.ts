/*
 * A replicating pair under a quick sample of sessions whose standby's replies are damaged on the
 * way (the long run is bench/fuzz-pair.ts; what a session does and what is checked:
 * pair-fuzzer.ts). Every NFS call on the primary settles in time and fails only for what its list
 * asked; once the link is clean the standby catches up and holds the primary's tree exactly.
 * Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { PairFuzzer, pairSessionArbitrary } from './pair-fuzzer.ts'

const RUNS = 12
const SEED = 0x50_41_49

t.test(`${String(RUNS)} replicating pairs against damaged standby replies (seed ${String(SEED)})`, async (t) => {
  const f = new PairFuzzer()
  t.teardown(() => { f.close() })
  const result = await fc.check(fc.asyncProperty(pairSessionArbitrary(), (s) => f.run(s)), { numRuns: RUNS, seed: SEED })
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ''}\nfirst: ${f.tally.firstFailure ?? ''}` : 'every call settled in time; every compared standby holds the primary\'s tree')
  t.equal(f.escaped, 0, 'no uncaught exception or unhandled rejection')
  t.ok(f.damaged > 0, `replies were damaged (${String(f.damaged)} of ${String(f.replies)})`)
  t.ok(f.tally.compared > 0, `trees were compared (${String(f.tally.compared)} sessions)`)
  t.ok((f.tally.byOutcome.ok ?? 0) > 0, `calls succeeded: ${JSON.stringify(f.tally.byOutcome)}`)
  t.equal(f.openConnections, 0, 'every relayed connection closed')
  t.comment(JSON.stringify({ ...f.tally, replies: f.replies, damaged: f.damaged }))
})
