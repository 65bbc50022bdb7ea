/*
 * A standby under a quick sample of hostile or broken primaries (the long
 * run is bench/fuzz-replication.ts; what a session does: repl-fuzzer.ts).
 * Every call answered with a reply that decodes or the connection closed,
 * never a hang; the node answers a new connection after every session; the
 * well-formed APPENDs applied; no error logged but a change that does not
 * fit (a mutated APPEND: the export then needs a resync, as designed). Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { EXPECTED_ERRORS, ReplFuzzer, replSessionArbitrary } from './repl-fuzzer.ts'

const RUNS = 150
const SEED = 0x5_7ad8

t.test(`${String(RUNS)} hostile primaries`, async (t) => {
  const f = new ReplFuzzer()
  t.teardown(() => f.close())
  const result = await fc.check(fc.asyncProperty(replSessionArbitrary, (s) => f.run(s)), { numRuns: RUNS, seed: SEED })
  t.notOk(result.failed, result.failed ? (fc.defaultReportMessage(result) ?? '') + `\nfirst: ${f.tally.firstFailure ?? ''}` : 'every call answered or the connection closed; the node stayed up')
  t.same(Object.keys(f.tally.errorMessages).filter((m) => !EXPECTED_ERRORS.has(m)), [], `nothing logged as an error but a change that does not fit: ${JSON.stringify(f.tally.errorMessages)}`)
  t.ok(f.tally.applied > RUNS, `${String(f.tally.applied)} changes applied and acknowledged durable`)
  const k = f.tally.byKind
  t.ok((k.GARBAGE_ARGS ?? 0) > 0, `mutated calls refused: ${JSON.stringify(k)}`)
  t.ok(Object.keys(k).some((x) => x.startsWith('REPL_APPEND:') && x !== 'REPL_APPEND:0'), 'APPENDs out of sequence refused')
  t.comment(JSON.stringify(f.tally))
})
