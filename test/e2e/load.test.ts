/*
 * The short load run (issue 7 §3; the long one is bench/load.ts): 16
 * clients, TCP and UDP mixed, each in its own directory, for ~5 s against
 * an in-process server. No operation fails or times out, descriptors and
 * live memory are back after the run (within a tolerance), and the end state
 * is exactly each client's model.
 */
import t from 'tap'
import { runLoad, summarize } from '../../bench/load.ts'

t.test('16 clients, TCP and UDP mixed, for ~5 s: no failure, no leak, exact end state', async t => {
  const r = await runLoad({ clients: 16, durationMs: 5000, separateProcess: false, seed: 7 })
  t.comment(summarize(r))
  t.strictSame(r.errors, [], 'no operation failed or timed out')
  t.strictSame(r.mismatches, [], 'every directory holds exactly what its client did')
  t.ok(r.ops > 16, `${String(r.ops)} operations ran`)
  t.ok(r.fdsAfter - r.fdsBefore <= r.options.fdTolerance, `open fds ${String(r.fdsBefore)} -> ${String(r.fdsAfter)}`)
  t.ok(r.rssAfter - r.rssBefore <= r.options.rssToleranceBytes, `live memory ${String(r.rssBefore)} -> ${String(r.rssAfter)} bytes`)
  t.strictSame(r.failures, [])
})
