/*
 * Our NFS client library under a quick sample of sessions whose replies are
 * damaged on the way (the long run is bench/fuzz-client.ts; what a session
 * does and what is checked: client-fuzzer.ts). Every operation settles in
 * time with one of the client's own errors or a result; nothing escapes;
 * undamaged sessions get their data back. Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { ClientFuzzer, sessionArbitrary } from './client-fuzzer.ts'

const RUNS = 60
const SEED = 0x43_4c_49

t.test(`${String(RUNS)} client sessions against damaged replies (seed ${String(SEED)})`, async (t) => {
  const f = await ClientFuzzer.create()
  t.teardown(() => f.close())
  const result = await fc.check(fc.asyncProperty(sessionArbitrary(), async (s) => (await f.run(s)) && (await f.alive())), { numRuns: RUNS, seed: SEED })
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ''}\nfirst: ${f.tally.firstFailure ?? '(the server stopped answering)'}` : 'every operation settled in time with a result or a client error')
  t.equal(f.escaped, 0, 'no uncaught exception or unhandled rejection')
  t.ok(f.tally.damaged > 0, `replies were damaged (${String(f.tally.damaged)} of ${String(f.tally.replies)})`)
  const o = f.tally.byOutcome
  t.ok((o.ok ?? 0) > 0, `operations succeeded: ${JSON.stringify(o)}`)
  t.ok((o.RPC_BAD_REPLY ?? 0) + (o.RPC_TIMEOUT ?? 0) > 0, 'damaged replies failed their calls')
  for (let i = 0; i < 50 && f.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(f.openConnections, 0, 'every relayed connection closed after its session')
  t.comment(JSON.stringify(f.tally))
})
