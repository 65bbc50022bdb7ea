/*
 * The replication families of the metrics endpoint (issue 15 §6): this
 * node's role and epoch, each export's position, and per peer whether it is
 * alive, how long since it answered, what it acknowledged, its lag in
 * changes and bytes, how often it was declared dead, and its full resyncs
 * (needed, running, progress in directories, files and bytes); and a
 * standby's own failed exports (NOSPC: which, where, since when).
 */
import type { Exposition, MetricsFamilies } from '../metrics/prometheus.ts'
import type { NodeStatus } from './status.ts'

const ROLE_VALUE = { primary: 1, standby: 2, fenced: 3, witness: 4 } as const

export function replicationFamilies(view: () => NodeStatus): MetricsFamilies {
  return (x: Exposition) => {
    const s = view()
    x.family('tsnfs_replication_role', 'gauge', 'This node\'s replication role: 1 primary, 2 standby, 3 fenced (a former primary that must rejoin as a standby), 4 witness.')
    x.sample('tsnfs_replication_role', { node: s.node }, ROLE_VALUE[s.role])
    x.family('tsnfs_replication_epoch', 'gauge', 'The epoch this node has seen (raised by every takeover).')
    x.sample('tsnfs_replication_epoch', { node: s.node }, Number(s.epoch))
    x.family('tsnfs_replication_position', 'gauge', 'Per export: the last change made durable (a standby) or logged (a primary).')
    for (const p of s.positions) x.sample('tsnfs_replication_position', { export: p.exportId }, Number(p.applied))
    x.family('tsnfs_replication_needs_resync', 'gauge', 'Per export: 1 when only a full resync can bring this standby back in step.')
    for (const p of s.positions) x.sample('tsnfs_replication_needs_resync', { export: p.exportId }, p.needResync ? 1 : 0)
    // A standby's own failed exports (NOSPC): samples only for those, so a healthy node shows none.
    x.family('tsnfs_replication_export_failed', 'gauge', 'Per export this node stopped taking changes for (its backend full): 1, with the reason, the error and the export\'s path.')
    for (const f of s.failures ?? []) x.sample('tsnfs_replication_export_failed', { export: f.exportId, reason: f.state.replace(/^failed: /, ''), code: f.code, path: f.path }, 1)
    x.family('tsnfs_replication_export_failed_since_seconds', 'gauge', 'Per failed export: when it failed, Unix time in seconds.')
    for (const f of s.failures ?? []) x.sample('tsnfs_replication_export_failed_since_seconds', { export: f.exportId }, f.sinceMs / 1000)
    const peer = (name: string, type: 'gauge' | 'counter', help: string, value: (p: NodeStatus['peers'][number]) => number): void => {
      x.family(name, type, help)
      for (const p of s.peers) x.sample(name, { peer: p.address }, value(p))
    }
    peer('tsnfs_replication_peer_alive', 'gauge', 'Whether the peer answered within the heartbeat timeout.', (p) => (p.alive ? 1 : 0))
    peer('tsnfs_replication_peer_heartbeat_age_seconds', 'gauge', 'Seconds since the peer last answered (-1: never).', (p) => (p.lastHeartbeatAgeMs === null ? -1 : p.lastHeartbeatAgeMs / 1000))
    peer('tsnfs_replication_peer_acked', 'gauge', 'The lowest position the peer has acknowledged over its exports.', (p) => Number(p.acked))
    peer('tsnfs_replication_peer_lag_ops', 'gauge', 'Changes logged and not yet acknowledged by the peer.', (p) => Number(p.lagOps))
    peer('tsnfs_replication_peer_lag_bytes', 'gauge', 'Bytes read from the log for the peer and not yet acknowledged (a lower bound when more than a batch behind).', (p) => Number(p.lagBytes))
    peer('tsnfs_replication_peer_deaths_total', 'counter', 'Times the peer was declared dead after the heartbeat timeout.', (p) => p.deaths ?? 0)
    peer('tsnfs_replication_peer_needs_resync', 'gauge', 'Whether the standby needs (or is in) a full resync: the log cannot bring it in step.', (p) => (p.resync?.needed === true || p.resync?.running === true ? 1 : 0))
    peer('tsnfs_replication_peer_resync_running', 'gauge', 'Whether a full resync of the standby is running.', (p) => (p.resync?.running === true ? 1 : 0))
    peer('tsnfs_replication_peer_resyncs_total', 'counter', 'Full resyncs started for the standby.', (p) => p.resync?.count ?? 0)
    peer('tsnfs_replication_peer_resync_dirs', 'gauge', 'Directories listed to the standby by the running (or last) full resync.', (p) => p.resync?.dirs ?? 0)
    peer('tsnfs_replication_peer_resync_files', 'gauge', 'Files whose data the running (or last) full resync sent.', (p) => p.resync?.files ?? 0)
    peer('tsnfs_replication_peer_resync_bytes', 'gauge', 'File bytes the running (or last) full resync sent.', (p) => p.resync?.bytes ?? 0)
  }
}
