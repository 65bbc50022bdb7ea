/*
 * Our NDMP client side (client/ndmp and the backup manager's jobs over it) under a quick sample
 * of sessions whose server records are damaged on the way (the long run is bench/fuzz-dma.ts;
 * what a session does and what is checked: dma-fuzzer.ts). Every operation settles in time with
 * a result or one of the client's own errors; nothing escapes; undamaged sessions succeed; no
 * relayed connection is left open. Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { DmaFuzzer, sessionArbitrary } from './dma-fuzzer.ts'

const RUNS = 40
const SEED = 0x44_4d_41

t.test(`${String(RUNS)} DMA sessions against damaged NDMP records (seed ${String(SEED)})`, async (t) => {
  const f = await DmaFuzzer.create()
  t.teardown(() => f.close())
  const result = await fc.check(fc.asyncProperty(sessionArbitrary(), async (s) => (await f.run(s)) && f.openConnections === 0), { numRuns: RUNS, seed: SEED })
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ''}\nfirst: ${f.tally.firstFailure ?? `(${String(f.openConnections)} relayed connections left open)`}` : 'every operation settled in time with a result or a client error')
  t.equal(f.escaped, 0, 'no uncaught exception or unhandled rejection')
  t.ok(f.tally.damaged > 0, `records were damaged (${String(f.tally.damaged)} of ${String(f.tally.records)})`)
  const o = f.tally.byOutcome
  t.ok((o.ok ?? 0) > 0, `operations succeeded: ${JSON.stringify(o)}`)
  t.ok((o.NDMP_PROTOCOL ?? 0) + (o.NDMP_TIMEOUT ?? 0) > 0, 'damaged records failed their calls')
  t.equal(f.openConnections, 0, 'every relayed connection closed after its session')
  t.equal(f.serverSessions, 0, 'the server has no session left')
  t.comment(JSON.stringify(f.tally))
})
