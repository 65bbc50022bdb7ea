import { topLayer } from './assemble.ts'
import type { AssembledVolume } from './assemble.ts'
import { redundantLayers } from './factory.ts'
import { redundantChildren } from './layer-walk.ts'
import type { OriginDevice } from './snapshot.ts'

/**
 * The status of an assembled volume as `tsnfs volume status --json` prints it, offline and
 * through a running server alike: the configuration's view of each member (its recorded state,
 * and `missing` for one absent at assembly) joined with what the running layers know now (a
 * member a layer failed since, one being rebuilt and how far).
 */
export interface MemberLine {
  readonly index: number
  readonly uuid: string
  readonly path: string | null
  readonly state: string
  /** Out of service: recorded failed, absent, or failed by a layer while running. */
  readonly failed: boolean
  readonly reason?: string
  /** While rebuilding: bytes of the member already whole. */
  readonly rebuilt?: number
}

export interface VolumeStatus {
  readonly name: string
  readonly id: string
  readonly level: string
  readonly size: number
  readonly seq: number
  readonly members: readonly MemberLine[]
  /** Serving with less redundancy than configured. */
  readonly degraded: boolean
  /** Not serving writes: more lost than the layout survives. */
  readonly failed: boolean
  readonly repairs: AssembledVolume['repairs']
  /** With a snapshot store: its size and use (absent on a volume that keeps no snapshots). */
  readonly snapshotStore?: SnapshotStoreStatus
}

/**
 * The exception store as status shows it: `size` the bytes of the top layer it takes; `bytes`
 * what its chunks can hold (the rest is its table and map) and `used` what copies take now (the
 * store fills as the origin is written after a snapshot; full, the oldest snapshot is given up);
 * snapshots by state.
 */
export interface SnapshotStoreStatus {
  readonly size: number
  readonly chunkSize: number
  readonly bytes: number
  readonly used: number
  readonly snapshots: number
  readonly deleting: number
  readonly invalid: number
}

export function snapshotStoreStatus(v: AssembledVolume & { readonly origin?: OriginDevice }): SnapshotStoreStatus | undefined {
  const kept = v.config.snapshotStore
  const origin = v.origin
  if (kept === undefined || origin === undefined) return undefined
  const usage = origin.store.usage()
  const chunk = origin.store.chunkSize
  const snaps = origin.listSnapshots()
  const count = (state: string): number => snaps.filter((s) => s.state === state).length
  return { size: kept.size, chunkSize: chunk, bytes: usage.chunks * chunk, used: usage.used * chunk, snapshots: count('live'), deleting: count('deleting'), invalid: count('invalid') }
}

export function describeMembers(v: AssembledVolume): MemberLine[] {
  const live = redundantChildren(v.config.root, topLayer(v))
  return v.config.members.map((m, index) => {
    const missing = v.missing.find((x) => x.uuid === m.uuid)
    const layer = live.find((c) => c.member === m.uuid)
    let state: string = m.state
    let reason = m.reason
    if (missing !== undefined) {
      state = m.state === 'ok' ? 'missing' : m.state
      reason = missing.reason
    } else if (layer !== undefined && layer.state !== 'ok' && m.state === 'ok') {
      // The layer knows before the configuration records it (or when recording failed).
      state = layer.state
      reason = layer.reason
    } else if (layer?.state === 'rebuilding') {
      state = 'rebuilding'
    }
    return {
      index,
      uuid: m.uuid,
      path: v.disks.find((d) => d.uuid === m.uuid)?.path ?? null,
      state,
      failed: state === 'failed' || state === 'missing',
      ...(reason === undefined ? {} : { reason }),
      ...(state === 'rebuilding' && layer?.rebuilt !== undefined ? { rebuilt: layer.rebuilt } : {}),
    }
  })
}

export function volumeStatus(v: AssembledVolume & { readonly origin?: OriginDevice }): VolumeStatus {
  const c = v.config
  const members = describeMembers(v)
  const layers = redundantLayers(topLayer(v)).map((l) => l.status())
  const degraded = members.some((m) => m.state !== 'ok') || layers.some((s) => s.degraded)
  // A nested layer that failed is a lost child of the one above; only the top one stops the volume.
  const root = topLayer(v)
  const top = redundantLayers(root)[0]
  const failed = top !== undefined && top === root && top.status().failed
  const store = snapshotStoreStatus(v)
  return { name: c.name, id: c.id, level: c.root.kind, size: v.device.size, seq: c.seq, members, degraded, failed, repairs: v.repairs, ...(store === undefined ? {} : { snapshotStore: store }) }
}
