/*
 * The replication sender under a quick sample of sessions whose standby's replies are damaged on
 * the way (the long run is bench/fuzz-sender.ts; what a session does and what is checked:
 * sender-fuzzer.ts). Every sync wait ends in time; the sender never counts the standby past the
 * log; a restarted primary brings the standby to the end of the log, each change once and in
 * order. Seeded: reruns are identical.
 */
import t from 'tap'
import fc from 'fast-check'
import { SenderFuzzer, senderSessionArbitrary } from './sender-fuzzer.ts'

const RUNS = 30
const SEED = 0x53_4e_44

t.test(`${String(RUNS)} sender sessions against damaged standby replies (seed ${String(SEED)})`, async (t) => {
  const f = new SenderFuzzer()
  t.teardown(() => { f.close() })
  const result = await fc.check(fc.asyncProperty(senderSessionArbitrary(), (s) => f.run(s)), { numRuns: RUNS, seed: SEED })
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ''}\nfirst: ${f.tally.firstFailure ?? ''}` : 'every wait ended in time and every standby caught up, once and in order')
  t.equal(f.escaped, 0, 'no uncaught exception or unhandled rejection')
  t.ok(f.damaged > 0, `replies were damaged (${String(f.damaged)} of ${String(f.replies)})`)
  t.ok(f.tally.connects > f.tally.sessions * 2, `damage ended sessions, and the senders reconnected (${String(f.tally.connects)} connections)`)
  t.ok(f.tally.syncMember > 0, 'some sync standbys were in the sync set at the end of the damage')
  t.equal(f.openConnections, 0, 'every relayed connection closed')
  t.comment(JSON.stringify({ ...f.tally, replies: f.replies, damaged: f.damaged }))
})
