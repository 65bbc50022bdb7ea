/*
 * The sync gate: on its own (members, acks, leaving, async mode, no live
 * standby), then with a sender and a standby over TCP: a reply's wait ends
 * only once the standby has made the change durable.
 */
import t from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { SyncGate } from '../../../server/replication/gate.ts'
import { Sender } from '../../../server/replication/sender.ts'
import { ArraySource, RecordingTarget, changeNo, patternData, startStandby, until } from './fixtures.ts'

/** Whether `p` has settled after the event loop has had `ms` to run. */
async function settled(p: Promise<unknown>, ms = 20): Promise<boolean> {
  let done = false
  void p.then(() => (done = true))
  await new Promise((r) => setTimeout(r, ms))
  return done
}

t.test('no live standby: the gate opens at once and says so', async (t) => {
  const g = new SyncGate(silentLogger)
  g.configure(1, { mode: 'sync' })
  await g.wait(1, 5n)
  t.match(g.status(), [{ exportId: 1, mode: 'sync', members: [], waiting: 0, noLiveStandby: true, openedAlone: 1 }])
  await g.wait(2, 5n)
  t.pass('an export never configured is not gated')
})

t.test('waiters resolve when every member has acked, in order; leaving releases them', async (t) => {
  const g = new SyncGate(silentLogger)
  g.configure(1, { mode: 'sync' })
  g.join('s1', 1, 0n)
  g.join('s2', 1, 0n)
  const w3 = g.wait(1, 3n)
  const w5 = g.wait(1, 5n)
  const w4 = g.wait(1, 4n)
  g.ack('s1', 1, 5n)
  t.notOk(await settled(w3), 'one member acked, the other not yet')
  g.ack('s2', 1, 4n)
  t.ok(await settled(w3))
  t.ok(await settled(w4))
  t.notOk(await settled(w5), 's2 has only 4')
  t.equal(g.status()[0]?.waiting, 1)
  g.ack('s2', 1, 3n)
  t.notOk(await settled(w5), 'an older ack changes nothing')
  g.leave('s2', 'heartbeat timeout')
  t.ok(await settled(w5), 's1 has 5; s2 left')
  const w9 = g.wait(1, 9n)
  g.leave('s1', 'dead')
  t.ok(await settled(w9), 'the last member left: open')
  t.match(g.status()[0], { noLiveStandby: true, openedAlone: 1 })
  await g.wait(1, 2n)
  t.pass('and a new member only counts from its join')
  g.join('s1', 1, 10n)
  await g.wait(1, 10n)
  t.pass('what it has acked at join does not wait')
})

t.test('async mode: always open; switching a gated export to async releases its waiters', async (t) => {
  const g = new SyncGate(silentLogger)
  g.configure(1, { mode: 'async', lagBoundMs: 500 })
  g.join('s1', 1, 0n)
  await g.wait(1, 100n)
  t.match(g.status(), [{ mode: 'async', lagBoundMs: 500, noLiveStandby: false }])
  g.configure(2, { mode: 'sync' })
  g.join('s1', 2, 0n)
  const w = g.wait(2, 1n)
  t.notOk(await settled(w))
  g.configure(2, { mode: 'async' })
  t.ok(await settled(w))
})

t.test('with a standby: a sync wait ends only after the standby made the change durable', async (t) => {
  const target = new RecordingTarget()
  const st = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const source = new ArraySource()
  const gate = new SyncGate(silentLogger)
  const s = new Sender({
    host: '127.0.0.1',
    port: st.port,
    cluster: 'c1',
    node: 'primary-1',
    epoch: () => 1n,
    hello: () => ({ handleKey: Buffer.alloc(32), exportList: Buffer.alloc(0), mountList: Buffer.alloc(0) }),
    exports: [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }],
    gate,
    log: silentLogger,
    heartbeatMs: 50,
    timeoutMs: 5000,
  })
  s.start()
  t.teardown(() => s.stop())
  await until(() => gate.isMember(s.peer, 1), 5000, 'the standby joined')
  let release = (): void => undefined
  target.flushGate = () =>
    new Promise<void>((r) => {
      release = r
    })
  const seqs = [source.append(changeNo(0)), source.append(changeNo(1)), source.append(changeNo(2))]
  let positionSeen = -1n
  const waits = seqs.map((q) => gate.wait(1, q).then(() => (positionSeen = target.position())))
  t.notOk(await settled(Promise.all(waits), 200), 'held while the standby has not flushed')
  t.equal(target.position(), 0n)
  target.flushGate = null
  release()
  await Promise.all(waits)
  t.equal(positionSeen, 3n, 'released with the changes durable on the standby')
  t.match(s.status(), { acked: 3n, alive: true })
})
