/*
 * The served volumes' families (issue 14 item 3, "volume state and events appear in the
 * metrics"): state, members by state, each member's failed flag, the progress of a running
 * rebuild or scrub, events by kind, and scrub mismatches. A volume appears while its export is
 * open.
 */
import { volumeStatus } from '../../vfs/volume/volume-status.ts'
import type { VolumeRegistry } from '../volume-registry.ts'
import type { Exposition, MetricsFamilies } from './prometheus.ts'

const STATES = ['ok', 'failed', 'rebuilding', 'missing'] as const

export function volumeFamilies(volumes: VolumeRegistry): MetricsFamilies {
  return (x: Exposition) => {
    const served = volumes.all().flatMap((sv) => (sv.volume === null ? [] : [{ sv, st: volumeStatus(sv.volume) }]))
    x.family('tsnfs_volume_state', 'gauge', 'Volume state: 0 ok, 1 degraded (serving with less redundancy than configured), 2 failed (writes refused).')
    for (const { sv, st } of served) x.sample('tsnfs_volume_state', { volume: sv.name }, st.failed ? 2 : st.degraded ? 1 : 0)
    x.family('tsnfs_volume_members', 'gauge', 'Members of the volume by state (ok, failed, rebuilding, missing: absent at start).')
    for (const { sv, st } of served) {
      for (const state of STATES) x.sample('tsnfs_volume_members', { volume: sv.name, state }, st.members.filter((m) => m.state === state).length)
    }
    x.family('tsnfs_volume_member_failed', 'gauge', 'Whether a member (its index in status) is out of service: 1 failed or missing, 0 not.')
    for (const { sv, st } of served) for (const m of st.members) x.sample('tsnfs_volume_member_failed', { volume: sv.name, member: m.index }, m.failed ? 1 : 0)
    const ratio = (kind: 'replace' | 'scrub', family: string, help: string): void => {
      x.family(family, 'gauge', help)
      for (const { sv } of served) {
        const op = sv.operation
        const p = op?.kind === kind ? op.progress : undefined
        x.sample(family, { volume: sv.name }, p === undefined || p.total === 0 ? 0 : p.done / p.total)
      }
    }
    ratio('replace', 'tsnfs_volume_rebuild_progress_ratio', 'Progress of the running replace (0 to 1; 0 when none runs).')
    ratio('scrub', 'tsnfs_volume_scrub_progress_ratio', 'Progress of the running scrub (0 to 1; 0 when none runs).')
    x.family('tsnfs_volume_operation_running', 'gauge', 'Whether a long operation (replace, scrub) runs on the volume.')
    for (const { sv } of served) x.sample('tsnfs_volume_operation_running', { volume: sv.name }, sv.operation === null ? 0 : 1)
    x.family('tsnfs_volume_events_total', 'counter', 'Volume events by kind (member-failed, read-repaired, rebuild-*, resync-*, scrub-mismatch, ...).')
    for (const { sv } of served) {
      for (const [kind, n] of [...sv.events].sort(([a], [b]) => a.localeCompare(b))) x.sample('tsnfs_volume_events_total', { volume: sv.name, kind }, n)
    }
    const stores = served.flatMap(({ sv, st }) => (st.snapshotStore === undefined ? [] : [{ sv, store: st.snapshotStore }]))
    x.family('tsnfs_volume_snapshot_store_bytes', 'gauge', 'Bytes the snapshot store\'s chunks hold (volumes that keep snapshots).')
    for (const { sv, store } of stores) x.sample('tsnfs_volume_snapshot_store_bytes', { volume: sv.name }, store.bytes)
    x.family('tsnfs_volume_snapshot_store_used_bytes', 'gauge', 'Bytes of the snapshot store taken by copies of origin chunks; full, the oldest snapshot is given up.')
    for (const { sv, store } of stores) x.sample('tsnfs_volume_snapshot_store_used_bytes', { volume: sv.name }, store.used)
    x.family('tsnfs_volume_snapshots', 'gauge', 'Live snapshots of the volume.')
    for (const { sv, store } of stores) x.sample('tsnfs_volume_snapshots', { volume: sv.name }, store.snapshots)
    x.family('tsnfs_volume_scrub_mismatches_total', 'counter', 'Mismatches (RAID-5 stripes, mirror ranges) found by scrubs since the volume opened.')
    for (const { sv } of served) x.sample('tsnfs_volume_scrub_mismatches_total', { volume: sv.name }, sv.scrubMismatches)
  }
}
