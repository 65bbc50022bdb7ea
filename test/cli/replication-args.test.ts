/*
 * The replication flags of `tsnfs standby` (cli/replication-args.ts): the
 * heartbeat interval and timeout reach the node's own senders after a
 * takeover (--standby), not only --auto-takeover; and the misuses are refused
 * with the flag named.
 */
import t from 'tap'
import { asPrimaryOf, autoTakeoverOf } from '../../cli/replication-args.ts'

t.test('--standby with --heartbeat/--heartbeat-timeout: the new primary\'s senders get them', (t) => {
  const values = { standby: ['10.0.0.2:2049', '[::1]:2050'], async: true, heartbeat: '250', 'heartbeat-timeout': '2000' }
  t.same(asPrimaryOf(values), { standbys: [{ host: '10.0.0.2', port: 2049 }, { host: '::1', port: 2050 }], mode: 'async', heartbeatMs: 250, timeoutMs: 2000 })
  t.equal(autoTakeoverOf(values), undefined, 'no --auto-takeover: none, and the heartbeat flags are not refused')
  t.same(asPrimaryOf({ standby: ['h:1'] }), { standbys: [{ host: 'h', port: 1 }], mode: 'sync' }, 'defaults: sync, the sender\'s own timings')
  t.equal(asPrimaryOf({}), undefined)
  t.end()
})

t.test('misuses are refused, naming the flag', (t) => {
  t.throws(() => autoTakeoverOf({ heartbeat: '100' }), /--heartbeat needs --auto-takeover/)
  t.throws(() => autoTakeoverOf({ 'heartbeat-timeout': '100' }), /--heartbeat-timeout needs --auto-takeover/)
  t.throws(() => autoTakeoverOf({ standby: ['h:1'], primary: 'a=h:1' }), /--primary needs --auto-takeover/)
  t.throws(() => asPrimaryOf({ sync: true }), /--sync and --async need --standby/)
  t.throws(() => asPrimaryOf({ standby: ['h:1'], sync: true, async: true }), /contradict/)
  t.throws(() => asPrimaryOf({ standby: ['h:1'], heartbeat: '0' }), /--heartbeat: milliseconds/)
  t.throws(() => asPrimaryOf({ standby: ['nope'] }), /--standby: not a HOST:PORT/)
  t.end()
})
