/*
 * The status monitor without RPC: the state number moves to the next odd
 * number at each open and is on disk before open resolves; the monitor list
 * persists and is bounded; a peer's restart reaches the listeners once per
 * state; entries of the previous run go once their peer acknowledges our
 * restart, unless monitored again meanwhile.
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NSM_FILE, NsmStore, nextOddState } from '../../../server/nsm/store.ts'
import { StatusMonitor } from '../../../server/nsm/monitor.ts'
import type { Logger } from '../../../server/logger.ts'
import { silentLogger } from '../../../server/logger.ts'
import { startFakeNsmPeer } from '../../helpers/nsm-peer.ts'

const myId = { my_name: 'localhost', my_prog: 300100, my_vers: 1, my_proc: 1 }
const priv = Buffer.alloc(16, 7)

t.test('nextOddState', async (t) => {
  t.equal(nextOddState(0), 1)
  t.equal(nextOddState(1), 3)
  t.equal(nextOddState(4), 5)
  t.equal(nextOddState(0x7fff_ffff), 1, 'wraps within an XDR int')
  t.equal(nextOddState(0x7fff_fffe), 0x7fff_ffff)
})

t.test('state: the next odd number at each open, saved before open resolves', async (t) => {
  const dir = t.testdir()
  const a = await StatusMonitor.open({ stateDir: dir, name: 'us' })
  t.equal(a.state, 1)
  t.match(JSON.parse(readFileSync(join(dir, NSM_FILE), 'utf8')), { version: 1, state: 1 }, 'on disk already')
  await a.close()
  const b = await StatusMonitor.open({ stateDir: dir, name: 'us' })
  t.equal(b.state, 3)
  await b.simulateCrash()
  t.equal(b.state, 5, 'a simulated crash moves to the next odd number too')
  await b.close()
  t.equal((await StatusMonitor.open({ stateDir: dir })).state, 7)
})

t.test('the monitor list persists; known() is the list as loaded', async (t) => {
  const dir = t.testdir()
  const a = await StatusMonitor.open({ stateDir: dir, name: 'us' })
  await a.monitor('client-a', '10.0.0.1')
  await a.monitor('client-a', '10.0.0.1')
  await a.monitor('client-b', '10.0.0.2')
  await a.monitor('client-b', '10.0.0.9')
  t.same(a.known(), [], 'nothing was known at start')
  t.ok(await a.register({ mon_id: { mon_name: 'peer-x', my_id: myId }, priv }))
  await a.close()

  const b = await StatusMonitor.open({ stateDir: dir, name: 'us' })
  t.same(b.known(), [{ name: 'client-a', address: '10.0.0.1' }, { name: 'client-b', address: '10.0.0.9' }], 'our NLM clients, latest address')
  t.same(b.entries().map((e) => [e.name, e.address, e.callback?.priv.toString('hex') ?? null]), [
    ['client-a', '10.0.0.1', null],
    ['client-b', '10.0.0.9', null],
    ['peer-x', 'peer-x', priv.toString('hex')],
  ])
  await b.unmonitor('client-a')
  await b.unregister({ mon_name: 'peer-x', my_id: { ...myId, my_proc: 2 } })
  t.equal(b.entries().length, 2, 'SM_UNMON for another my_id removes nothing')
  await b.unregisterAll(myId)
  t.same(b.entries().map((e) => e.name), ['client-b'])
  await b.close()
  t.same((await StatusMonitor.open({ stateDir: dir })).entries().map((e) => e.name), ['client-b'])
})

t.test('the list is bounded', async (t) => {
  const m = await StatusMonitor.open({ stateDir: t.testdir(), maxEntries: 2 })
  await m.monitor('a', '10.0.0.1')
  t.ok(await m.register({ mon_id: { mon_name: 'b', my_id: myId }, priv }))
  await t.rejects(m.monitor('c', '10.0.0.3'), { code: 'NSM_FULL' })
  t.equal(await m.register({ mon_id: { mon_name: 'c', my_id: myId }, priv }), false, 'SM_MON refused')
  await m.monitor('a', '10.0.0.4')
  t.equal(m.entries()[0]?.address, '10.0.0.4', 'an existing entry still changes at the bound')
  await t.rejects(m.monitor('', '10.0.0.1'), { code: 'NSM_BAD_NAME' })
  await m.close()
})

t.test('a corrupt file is logged and starts afresh', async (t) => {
  const dir = t.testdir({ [NSM_FILE]: '{"version":1,"state":"x"}' })
  const warnings: string[] = []
  const log: Logger = { ...silentLogger, warn: (_: object | string, msg?: string) => { warnings.push(msg ?? '') }, child: () => log }
  const s = await NsmStore.open(dir, log)
  t.equal(s.state, 0)
  t.same(s.entries, [])
  t.match(warnings, [/corrupt/])
  writeFileSync(join(dir, NSM_FILE), 'not json')
  t.equal((await NsmStore.open(dir)).state, 0)
})

t.test('saves made while one runs are written together', async (t) => {
  const dir = t.testdir()
  const s = await NsmStore.open(dir)
  const saves = [s.commit({ state: 1 }), s.commit({ state: 3 }), s.commit({ state: 5 })]
  t.equal(saves[1], saves[2], 'the queued save is shared')
  await Promise.all(saves)
  t.equal((await NsmStore.open(dir)).state, 5)
})

t.test('peer restarts reach the listeners once per state', async (t) => {
  const m = await StatusMonitor.open({ stateDir: t.testdir() })
  const seen: string[] = []
  const off = m.onPeerRestart((name, state, address) => seen.push(`${name} ${String(state)} ${address}`))
  m.onPeerRestart(() => {
    throw new Error('a listener that fails does not stop the others')
  })
  t.equal(m.peerRestarted('client-a', 3, '10.0.0.1'), true)
  t.equal(m.peerRestarted('CLIENT-A', 3, '10.0.0.1'), false, 'a retransmission (names compare without case)')
  t.equal(m.peerRestarted('client-a', 5, '10.0.0.1'), true)
  off()
  m.peerRestarted('client-b', 1, '10.0.0.2')
  t.same(seen, ['client-a 3 10.0.0.1', 'client-a 5 10.0.0.1'])
  await m.close()
})

t.test('notified peers leave the list unless monitored again', async (t) => {
  const peer = await startFakeNsmPeer(t, '127.0.0.2')
  const dir = t.testdir()
  const opts = { stateDir: dir, name: 'us', peerPortmapPort: peer.port, portCache: null }
  const a = await StatusMonitor.open(opts)
  await a.monitor('gone', '127.0.0.2')
  await a.monitor('back', '127.0.0.2')
  await a.monitor('silent', '127.0.0.9')
  await a.close()

  const b = await StatusMonitor.open({ ...opts, notifyGiveUpMs: 300, notifyFirstRetryMs: 100, callTimeoutMs: 100 })
  await b.monitor('back', '127.0.0.2')
  const report = await b.notifyAll()
  t.same(report.notified.map((p) => p.name).sort(), ['back', 'gone'])
  t.same(report.gaveUp.map((p) => p.name), ['silent'])
  t.same(peer.notifications.map((n) => [n.mon_name, n.state]), [['us', 3], ['us', 3]])
  await b.close()
  t.same(b.entries().map((e) => e.name), ['back', 'silent'], 'monitored again, or never told: kept')
  t.same(b.known().map((p) => p.name), ['gone', 'back', 'silent'], 'known() still lists who was there at start')
})

t.test('close stops the retries', async (t) => {
  const m = await StatusMonitor.open({ stateDir: t.testdir(), peerPortmapPort: 9, notifyFirstRetryMs: 10_000, callTimeoutMs: 100 })
  await m.monitor('nobody', '127.0.0.9')
  const run = m.notifyAll()
  setTimeout(() => void m.close(), 300)
  const report = await run
  t.same(report.stopped, [{ name: 'nobody', address: '127.0.0.9' }])
  t.same(report.notified, [])
})

t.test('many silent peers retried at once: no listener-leak warning', async (t) => {
  // Every notify worker waits on the run's signal (its retry sleep, its call): with more than ten
  // peers retried at once Node warned "Possible EventTarget memory leak detected" on stderr.
  const warnings: string[] = []
  const onWarning = (w: Error): void => {
    warnings.push(`${w.name}: ${w.message}`)
  }
  process.on('warning', onWarning)
  t.teardown(() => {
    process.off('warning', onWarning)
  })
  const m = await StatusMonitor.open({ stateDir: t.testdir(), peerPortmapPort: 9, notifyFirstRetryMs: 50, notifyMaxRetryMs: 50, notifyGiveUpMs: 600, callTimeoutMs: 50, portCache: null })
  for (let i = 0; i < 20; i++) await m.monitor(`peer-${String(i)}`, `127.0.0.${String(10 + i)}`)
  const report = await m.notifyAll()
  t.equal(report.gaveUp.length, 20, 'every peer given up on')
  // Warnings are emitted on the next tick.
  await new Promise((r) => setImmediate(r))
  t.same(warnings.filter((w) => w.includes('MaxListenersExceeded')), [], 'no MaxListenersExceededWarning')
  await m.close()
})
