/*
 * The status view: to the wire and back, as JSON (bigints as strings), text
 * cut to the wire's 64 bytes, the metrics families, and ownChange (the
 * standby's copy of a change out of the reused record).
 */
import t from 'tap'
import type { Change } from '../../../vfs/replica/change.ts'
import { Exposition } from '../../../server/metrics/prometheus.ts'
import { replicationFamilies } from '../../../server/replication/metrics.ts'
import { failuresFromWire, failuresToWire, statusFromWire, statusToJson, statusToWire } from '../../../server/replication/status.ts'
import type { NodeStatus } from '../../../server/replication/status.ts'
import { repl_failures_ok, repl_status_ok } from '../../../xdr/generated/replication.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'

const view: NodeStatus = {
  node: 'n1',
  role: 'primary',
  epoch: 2n ** 60n,
  positions: [{ exportId: 3, applied: 42n, needResync: true }],
  peers: [
    { node: 's1', address: '10.0.0.2:2050', role: 'standby', alive: true, lastHeartbeatAgeMs: 250, acked: 40n, lagOps: 2n, lagBytes: 300n, state: 'streaming', deaths: 1 },
    { node: 's2', address: '10.0.0.3:2050', role: 'standby', alive: false, lastHeartbeatAgeMs: null, acked: 0n, lagOps: 42n, lagBytes: 0n, state: 'x'.repeat(80), resync: { count: 2, running: true, needed: false, dirs: 7, files: 5, bytes: 4096 } },
  ],
}

function roundTrip<T>(codec: { encode(w: XdrWriter, v: T): void; decode(r: XdrReader): T }, v: T): T {
  const w = new XdrWriter(64)
  codec.encode(w, v)
  const r = new XdrReader(Buffer.concat(w.finish()))
  const out = codec.decode(r)
  r.done()
  return out
}

t.test('status over the wire and as JSON', async (t) => {
  const back = statusFromWire(roundTrip(repl_status_ok, statusToWire(view)))
  const p0 = view.peers[0]
  if (p0 === undefined) throw new Error('no peer')
  const { deaths, ...local } = p0
  t.equal(deaths, 1)
  t.same(back.peers[0], local, 'a peer there and back (deaths stays local)')
  t.equal(back.peers[1]?.state, 'x'.repeat(64), 'text cut to REPL_MAXID bytes')
  t.equal(back.peers[1]?.lastHeartbeatAgeMs, null, 'never heard: 0 on the wire, null here')
  t.same({ ...back, peers: [] }, { ...view, peers: [] })
  t.same(JSON.parse(JSON.stringify(statusToJson(view))), {
    node: 'n1',
    role: 'primary',
    epoch: '1152921504606846976',
    positions: [{ exportId: 3, applied: '42', needResync: true }],
    peers: [
      { node: 's1', address: '10.0.0.2:2050', role: 'standby', alive: true, lastHeartbeatAgeMs: 250, acked: '40', lagOps: '2', lagBytes: '300', state: 'streaming' },
      { node: 's2', address: '10.0.0.3:2050', role: 'standby', alive: false, lastHeartbeatAgeMs: null, acked: '0', lagOps: '42', lagBytes: '0', state: 'x'.repeat(80) },
    ],
  })
})

t.test('metrics families', async (t) => {
  const x = new Exposition()
  replicationFamilies(() => view)(x)
  const samples = x.text().split('\n').filter((l) => l !== '' && !l.startsWith('#'))
  t.same(samples, [
    'tsnfs_replication_role{node="n1"} 1',
    'tsnfs_replication_epoch{node="n1"} 1152921504606847000',
    'tsnfs_replication_position{export="3"} 42',
    'tsnfs_replication_needs_resync{export="3"} 1',
    'tsnfs_replication_peer_alive{peer="10.0.0.2:2050"} 1',
    'tsnfs_replication_peer_alive{peer="10.0.0.3:2050"} 0',
    'tsnfs_replication_peer_heartbeat_age_seconds{peer="10.0.0.2:2050"} 0.25',
    'tsnfs_replication_peer_heartbeat_age_seconds{peer="10.0.0.3:2050"} -1',
    'tsnfs_replication_peer_acked{peer="10.0.0.2:2050"} 40',
    'tsnfs_replication_peer_acked{peer="10.0.0.3:2050"} 0',
    'tsnfs_replication_peer_lag_ops{peer="10.0.0.2:2050"} 2',
    'tsnfs_replication_peer_lag_ops{peer="10.0.0.3:2050"} 42',
    'tsnfs_replication_peer_lag_bytes{peer="10.0.0.2:2050"} 300',
    'tsnfs_replication_peer_lag_bytes{peer="10.0.0.3:2050"} 0',
    'tsnfs_replication_peer_deaths_total{peer="10.0.0.2:2050"} 1',
    'tsnfs_replication_peer_deaths_total{peer="10.0.0.3:2050"} 0',
    'tsnfs_replication_peer_needs_resync{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_needs_resync{peer="10.0.0.3:2050"} 1',
    'tsnfs_replication_peer_resync_running{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_resync_running{peer="10.0.0.3:2050"} 1',
    'tsnfs_replication_peer_resyncs_total{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_resyncs_total{peer="10.0.0.3:2050"} 2',
    'tsnfs_replication_peer_resync_dirs{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_resync_dirs{peer="10.0.0.3:2050"} 7',
    'tsnfs_replication_peer_resync_files{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_resync_files{peer="10.0.0.3:2050"} 5',
    'tsnfs_replication_peer_resync_bytes{peer="10.0.0.2:2050"} 0',
    'tsnfs_replication_peer_resync_bytes{peer="10.0.0.3:2050"} 4096',
  ])
})

t.test('ownChange copies every buffer out of the record', async (t) => {
  const { ownChange } = await import('../../../server/replication/own-change.ts')
  const record = Buffer.alloc(64, 1)
  const view = (n: number): Buffer => record.subarray(n, n + 4)
  const ref = { id: 7n, gen: 1 }
  const obj = { dir: ref, name: view(0), ref, mode: 0o644, uid: 0, gid: 0 }
  const all: Change[] = [
    { op: 'create', obj, exclusive: record.subarray(8, 16), times: [] },
    { op: 'mkdir', obj, times: [] },
    { op: 'symlink', obj, target: view(20), times: [] },
    { op: 'mknod', obj, type: 'fifo', rdev: { major: 0, minor: 0 }, times: [] },
    { op: 'write', ref, offset: 0n, length: 4, data: view(24), times: [] },
    { op: 'remove', dir: ref, name: view(28), times: [] },
    { op: 'rmdir', dir: ref, name: view(28), times: [] },
    { op: 'link', ref, dir: ref, name: view(32), times: [] },
    { op: 'rename', fromDir: ref, fromName: view(36), toDir: ref, toName: view(40), times: [] },
    { op: 'setattr', ref, set: { mode: 1 }, times: [] },
  ]
  const owned = all.map(ownChange)
  record.fill(9)
  for (const [i, c] of owned.entries()) {
    const before = all[i]
    t.equal(c.op, before?.op)
    t.notMatch(JSON.stringify(c, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), /\b9\b/, `${c.op}: no byte of the reused record`)
  }
})

t.test("a standby's own failed exports: over the wire, as JSON, in the metrics; absent when none", async (t) => {
  const failed: NodeStatus = {
    node: 'b',
    role: 'standby',
    epoch: 3n,
    positions: [{ exportId: 5, applied: 17n, needResync: false }],
    peers: [],
    failures: [{ exportId: 5, state: 'failed: NOSPC', code: 'EDQUOT', path: '/srv/"q"', sinceMs: 1_765_000_000_123 }],
  }
  const { failures, ...rest } = failed
  t.strictSame(statusFromWire(roundTrip(repl_status_ok, statusToWire(failed))), rest, 'STATUS carries no failures (its wire form is unchanged)')
  t.strictSame(failuresFromWire(roundTrip(repl_failures_ok, failuresToWire(failures))), failures, 'REPL_FAILURES: there and back')
  t.strictSame(failuresFromWire(roundTrip(repl_failures_ok, failuresToWire(undefined))), [], 'none: an empty list')
  t.strictSame((JSON.parse(JSON.stringify(statusToJson(failed))) as { failures: unknown }).failures, [
    { exportId: 5, state: 'failed: NOSPC', code: 'EDQUOT', path: '/srv/"q"', since: '2025-12-06T05:46:40.123Z' },
  ])
  const x = new Exposition()
  replicationFamilies(() => failed)(x)
  t.strictSame(x.text().split('\n').filter((l) => l.startsWith('tsnfs_replication_export_failed')), [
    'tsnfs_replication_export_failed{export="5",reason="NOSPC",code="EDQUOT",path="/srv/\\"q\\""} 1',
    'tsnfs_replication_export_failed_since_seconds{export="5"} 1765000000.123',
  ])
})
