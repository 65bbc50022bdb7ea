/*
 * The NDMP server under a quick sample of hostile DMA sessions (the long run
 * is bench/fuzz-ndmp.ts; what a session does: ndmp-fuzzer.ts). Every request
 * answered with an ndmp4_error or the connection closed, never a hang; the
 * server greets and opens a new connection after every session and has no
 * connection left open at the end. Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { NdmpFuzzer, sessionArbitrary } from './ndmp-fuzzer.ts'

const RUNS = 400
const SEED = 0x4d_4e_44

t.test(`${String(RUNS)} hostile NDMP sessions`, async (t) => {
  const f = await NdmpFuzzer.create()
  t.teardown(() => f.close())
  t.ok(f.requests.length >= 40, `${String(f.requests.length)} version-4 requests registered`)
  const result = await fc.check(
    fc.asyncProperty(sessionArbitrary(f), async (s) => (await f.run(s)) && (await f.alive())),
    { numRuns: RUNS, seed: SEED },
  )
  t.notOk(result.failed, result.failed ? (fc.defaultReportMessage(result) ?? '') + `\nfirst: ${f.tally.firstFailure ?? '(the server did not greet or open a new connection)'}` : 'every request answered or the connection closed; the server stayed up')
  const e = f.tally.byError
  t.equal(f.tally.handlerFaults, 0, 'no handler failed unexpectedly (nothing logged as an error)')
  t.ok((e.NDMP4_NO_ERR ?? 0) > 0, `some requests succeeded: ${JSON.stringify(e)}`)
  t.ok((e.NDMP4_NOT_AUTHORIZED_ERR ?? 0) > 0, 'unauthorized sessions were refused')
  t.ok((e.NDMP4_ILLEGAL_ARGS_ERR ?? 0) + (e.NDMP4_XDR_DECODE_ERR ?? 0) > 0, 'bad bodies were refused')
  // The server counts a connection until its close hook ran.
  for (let i = 0; i < 50 && f.openSessions > 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(f.openSessions, 0, 'no connection left open')
  t.comment(JSON.stringify(f.tally))
})
