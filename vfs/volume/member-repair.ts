import { resolve } from 'node:path'
import { topLayer } from './assemble.ts'
import type { AssembledVolume } from './assemble.ts'
import type { UpdateResult } from './create-volume.ts'
import type { VolumeConfig } from './config.ts'
import type { RebuildOptions } from './layer.ts'
import { VolumeError } from './layer.ts'
import { MEMBER_RESERVED } from './member-format.ts'
import type { Disk } from './member-io.ts'
import { rebuildMember, replaceMember, setMemberState } from './member-state.ts'
import { MirrorDevice } from './mirror.ts'
import { PartitionDevice } from './partition.ts'
import { Raid5Device } from './raid5.ts'

/**
 * `fail` and `replace` of a member of the top layer (a mirror's leg, a RAID-5 member: every
 * layout `tsnfs volume create` makes), on an assembled volume: the offline commands and the
 * server's admin channel both run these, so a volume changes the same way whoever holds it.
 */

export interface TopMember {
  readonly uuid: string
  /** Its place among the top layer's children. */
  readonly place: number
  readonly layer: MirrorDevice | Raid5Device
}

/** Member `index` of the configuration, and its place among the top layer's children. */
export function topMember(v: AssembledVolume, index: number): TopMember {
  const c = v.config
  const m = Number.isSafeInteger(index) ? c.members[index] : undefined
  if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `volume ${c.name} has no member ${index} (members 0 … ${c.members.length - 1})`)
  const root = c.root
  const layer = topLayer(v)
  const place = root.kind === 'mirror' || root.kind === 'raid5' ? root.children.findIndex((n) => n.kind === 'disk' && n.member === m.uuid) : -1
  if (place < 0 || !(layer instanceof MirrorDevice || layer instanceof Raid5Device)) {
    throw new VolumeError('VOLUME_LAYOUT', `volume ${c.name} is a ${root.kind}: only a member of a top-level mirror or RAID-5 can be failed or replaced`)
  }
  return { uuid: m.uuid, place, layer }
}

/** Indices of the members out of service now: recorded so, absent at assembly, or failed by the layer since. */
function outOfService(v: AssembledVolume, top: TopMember): number[] {
  const live = top.layer.status().members
  return v.config.members.flatMap((m, i) => {
    const place = v.config.root.kind === 'disk' || v.config.root.kind === 'partition' ? -1 : v.config.root.children.findIndex((n) => n.kind === 'disk' && n.member === m.uuid)
    const layerState = live[place]?.state ?? 'ok'
    return m.state !== 'ok' || layerState !== 'ok' || v.missing.some((x) => x.uuid === m.uuid) ? [i] : []
  })
}

/**
 * Takes member `index` out of service: recorded failed in the configuration (so its disk, if it
 * comes back, is refused as stale), then failed in the layer, which stops using it. Refused when
 * it already is failed, or when the volume could not serve without it.
 */
export async function failTopMember(v: AssembledVolume, index: number, reason: string): Promise<UpdateResult> {
  const top = topMember(v, index)
  const c = v.config
  if (c.members[index]?.state === 'failed') throw new VolumeError('VOLUME_MEMBER', `member ${index} (${top.uuid}) of volume ${c.name} is already failed`)
  // The same rule the assembly applies: a change that would leave the volume unable to serve is refused.
  const lost = outOfService(v, top).filter((i) => i !== index)
  const children = c.root.kind === 'mirror' || c.root.kind === 'raid5' ? c.root.children.length : 0
  if (c.root.kind === 'raid5' ? lost.length > 0 : lost.length >= children - 1) {
    throw new VolumeError('VOLUME_FAILED', `volume ${c.name} already runs without ${lost.map((i) => `member ${i}`).join(', ')}; failing member ${index} too would lose it`)
  }
  const r = await setMemberState(v, top.uuid, 'failed', reason)
  if (top.layer.status().members[top.place]?.state !== 'failed') top.layer.fail(top.place)
  return r
}

/** Refuses a new disk that is one of the volume's disks already (before it is opened, which would fail on the lock). */
export function refuseMemberPath(v: AssembledVolume, path: string): void {
  if (v.disks.some((d) => resolve(d.path) === resolve(path))) throw new VolumeError('VOLUME_MEMBER', `${path} is one of the volume's disks already`)
}

/**
 * Puts `disk` in place of member `index` and rebuilds onto it while the volume keeps serving
 * (replaceMember records the swap, rebuildMember has the layer copy or recompute the data with
 * checkpoints in the configuration, then records the new member ok). RAID-5 rebuilds only a member it no longer uses, so a member still in service
 * is failed first; a mirror takes any leg. Refused before anything changes when the layer could
 * not rebuild (no other whole copy).
 */
export async function replaceTopMember(v: AssembledVolume, index: number, disk: Disk, opts: RebuildOptions = {}): Promise<{ uuid: string; config: VolumeConfig }> {
  const top = topMember(v, index)
  const { place, layer } = top
  const c = v.config
  refuseMemberPath(v, disk.path)
  const others = outOfService(v, top).filter((i) => i !== index)
  const children = c.root.kind === 'mirror' || c.root.kind === 'raid5' ? c.root.children.length : 0
  if (layer instanceof Raid5Device ? others.length > 0 : others.length >= children - 1) {
    throw new VolumeError('VOLUME_FAILED', `volume ${c.name} runs without ${others.map((i) => `member ${i}`).join(', ')}: no whole copy to rebuild member ${index} from`)
  }
  const size = c.members[index]?.size ?? 0
  const swapped = await replaceMember(v, top.uuid, disk)
  if (layer instanceof Raid5Device && layer.status().members[place]?.state !== 'failed') layer.fail(place)
  // Checkpointed in the configuration: if the process dies, the next read-write open of the volume continues from the last checkpoint.
  await rebuildMember(v, swapped.uuid, layer, place, new PartitionDevice(disk.dev, MEMBER_RESERVED, size), opts)
  return { uuid: swapped.uuid, config: v.config }
}
