/*
 * Seeded faults while changes keep coming: the standby's server closed and
 * restarted on its port, its link silenced for less or more than the
 * heartbeat timeout, its tail lost (a GAP). Whatever the order, the standby
 * ends with every change exactly once and in order, and sync waiters always
 * return (released by an ack or by the timeout).
 */
import t from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { SyncGate } from '../../../server/replication/gate.ts'
import { Sender } from '../../../server/replication/sender.ts'
import { prng } from '../../helpers/prng.ts'
import { ArraySource, RecordingTarget, changeNo, patternData, startRelay, startStandby, until } from './fixtures.ts'
import type { StandbyFixture } from './fixtures.ts'

const seed = Number(process.env.REPL_SEED ?? Date.now() % 100_000)
t.comment(`seed ${seed} (REPL_SEED to repeat)`)

t.test('random faults, continuous changes: exactly once, in order', async (t) => {
  const random = prng(seed)
  const dir = t.testdir()
  const target = new RecordingTarget()
  let st: StandbyFixture = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target }] })
  const port = st.port
  const relay = await startRelay(t, port)
  const source = new ArraySource()
  const gate = new SyncGate(silentLogger)
  const s = new Sender({
    host: '127.0.0.1',
    port: relay.port,
    cluster: 'c1',
    node: 'primary-1',
    epoch: () => 1n,
    hello: () => ({ handleKey: Buffer.alloc(32), exportList: Buffer.alloc(0), mountList: Buffer.alloc(0) }),
    exports: [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }],
    gate,
    log: silentLogger,
    heartbeatMs: 40,
    timeoutMs: 300,
    reconnectMinMs: 10,
    reconnectMaxMs: 80,
    batchChanges: 1 + Math.floor(random() * 100),
    maxInFlight: 1 + Math.floor(random() * 4),
  })
  s.start()
  t.teardown(() => s.stop())

  // Writers: append and wait on the gate, as sync replies would; every wait must end.
  let stop = false
  let waits = 0
  const writers = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const seq = source.append(changeNo(Number(source.lastSeq()) + seed))
      await gate.wait(1, seq)
      waits++
      if (random() < 0.3) await new Promise((r) => setTimeout(r, 1))
    }
  })

  const faults: string[] = []
  for (let round = 0; round < 8; round++) {
    await new Promise((r) => setTimeout(r, 50 + random() * 150))
    const pick = random()
    if (pick < 0.35) {
      faults.push('restart')
      await st.close()
      await new Promise((r) => setTimeout(r, random() * 100))
      st = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target }], port })
    } else if (pick < 0.7) {
      const ms = random() < 0.5 ? 100 : 450
      faults.push(`silence ${String(ms)} ms`)
      relay.pause()
      await new Promise((r) => setTimeout(r, ms))
      relay.resume()
    } else {
      // Not back to 0: a standby at position 0 is a new one, and gets a full resync (resync.ts),
      // which this recording target does not take; a lost tail keeps at least the first change.
      faults.push('lose tail')
      await st.service.idle()
      const back = target.position() - BigInt(Math.floor(random() * 20))
      if (target.position() > 1n) target.rewind(back > 1n ? back : 1n)
    }
  }
  // A lost tail is found by the next APPEND (the standby answers GAP): heartbeats carry no positions,
  // and in service a standby loses its tail only by restarting, whose HELLO reports it. So the writers
  // go on until a change logged after the last fault has been shipped (under load they could stop
  // first, leaving a tail lost in place with nothing left to ship: CI saw that once).
  const afterFaults = source.lastSeq()
  await until(() => source.lastSeq() > afterFaults + 1n, 15_000, 'a change after the last fault').catch((err: unknown) => {
    // Writers stuck on the gate (CI, seed 16151: a rewind between a batch's apply and its flush gave
    // an OK short of the batch, which the sender now treats as a gap): stop them, so the test ends
    // now rather than at tap's timeout, and say where the sender and the gate stood.
    stop = true
    const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v)
    t.comment(`stuck: faults ${faults.join(', ')}; log at ${source.lastSeq()}, standby at ${target.position()}; sender ${JSON.stringify(s.status(), big)} ${JSON.stringify(s.counters)}; gate ${JSON.stringify(gate.status(), big)}`)
    throw err
  })
  stop = true
  await Promise.all(writers)
  t.comment(`faults: ${faults.join(', ')}; ${waits} sync waits; ${s.counters.deaths} deaths, ${s.counters.gaps} gaps, ${s.counters.connects} connects`)
  const last = source.lastSeq()
  await until(() => target.position() === last, 15_000, `the standby at ${last}`)
  t.same(target.seqs(), Array.from({ length: Number(last) }, (_, i) => BigInt(i + 1)), `${last} changes, each once, in order`)
  t.same(target.violations, [], 'the target was always asked for the change after its last')
  t.ok(waits > 0, 'writers made progress')
})
