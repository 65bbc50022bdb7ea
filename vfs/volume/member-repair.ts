import { resolve } from 'node:path'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { AssembledVolume } from './assemble.ts'
import type { UpdateResult } from './create-volume.ts'
import type { LayoutNode, VolumeConfig } from './config.ts'
import { membersUnder } from './config.ts'
import type { RebuildOptions } from './layer.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import { MEMBER_RESERVED } from './member-format.ts'
import type { Disk } from './member-io.ts'
import type { MemberPlace } from './member-place.ts'
import { placeOf, refuseUnsafe } from './member-place.ts'
import { rebuildMember, replaceMember, setMemberState } from './member-state.ts'
import type { LegReplaceOptions } from './mirror.ts'
import { PartitionDevice } from './partition.ts'
import { Raid5Device } from './raid5.ts'
import { SpanDevice } from './span.ts'
import { StripeDevice } from './stripe.ts'

/**
 * `fail` and `replace` of a member disk wherever it sits (a leg of the top mirror, a RAID-5
 * member under partitions, a disk of a stripe under a mirror), on an assembled volume: the
 * offline commands and the server's admin channel both run these, so a volume changes the same
 * way whoever holds it. The layer that acts is the nearest mirror or RAID-5 above the disk
 * (member-place.ts); when the disk is one of several in that layer's child (a stripe leg), the
 * whole child fails and a replace rebuilds the whole child, as md does with RAID-1 over RAID-0.
 */

export interface FailResult extends UpdateResult {
  readonly place: MemberPlace
  /** What stopped serving: the member's disk alone, or the layer child holding it (members by index). */
  readonly lost: string
}

function describeLoss(v: AssembledVolume, p: MemberPlace): string {
  if (p.sole) return `${p.path} (member ${p.index})`
  const under = membersUnder(p.child).map((u) => v.config.members.findIndex((m) => m.uuid === u))
  return `${p.path}, the ${p.child.kind} of members ${under.join(', ')} (a ${p.child.kind} cannot lose one disk: the whole ${p.layer.kind} child goes)`
}

/**
 * Takes member `index` out of service: recorded failed in the configuration (so its disk, if it
 * comes back, is refused as stale), then its child failed in the nearest redundant layer, which
 * stops using it. Refused when it already is failed, or when the volume could not serve without it.
 */
export async function failVolumeMember(v: AssembledVolume, index: number, reason: string): Promise<FailResult> {
  const p = placeOf(v, index)
  const c = v.config
  if (c.members[index]?.state === 'failed') throw new VolumeError('VOLUME_MEMBER', `member ${index} (${p.uuid}) of volume ${c.name} is already failed`)
  // The same rule the assembly applies: a change that would leave the volume unable to serve is refused.
  refuseUnsafe(v, p, (lost) => `volume ${c.name} already runs without ${lost}; failing member ${index} too would lose it`)
  const r = await setMemberState(v, p.uuid, 'failed', reason)
  if (p.layer.status().members[p.place]?.state !== 'failed') p.layer.fail(p.place)
  return { ...r, place: p, lost: describeLoss(v, p) }
}

/** Refuses a new disk that is one of the volume's disks already (before it is opened, which would fail on the lock). */
export function refuseMemberPath(v: AssembledVolume, path: string): void {
  if (v.disks.some((d) => resolve(d.path) === resolve(path))) throw new VolumeError('VOLUME_MEMBER', `${path} is one of the volume's disks already`)
}

/** Checks that member `index` can be replaced now (see replaceVolumeMember), before any disk is opened or changed. */
export function checkReplace(v: AssembledVolume, index: number): MemberPlace {
  const p = placeOf(v, index)
  const c = v.config
  refuseUnsafe(v, p, (lost) => `volume ${c.name} runs without ${lost}: no whole copy to rebuild member ${index} from`)
  if (!p.sole) {
    for (const u of membersUnder(p.child)) {
      if (u === p.uuid) continue
      const i = c.members.findIndex((m) => m.uuid === u)
      const m = c.members[i]
      const here = v.disks.some((d) => d.uuid === u)
      if (m?.state !== 'ok' || !here) {
        throw new VolumeError('VOLUME_MEMBER', `member ${index} is in ${p.path}, which also needs member ${i} (${u}), ${here ? m?.state : 'absent'}: the ${p.child.kind} is rebuilt whole, from disks that are all here and ok but this one`)
      }
    }
    if (containsRedundancy(p.child)) throw new VolumeError('VOLUME_LAYOUT', `${p.path} holds a mirror or RAID-5 of its own: replace rebuilds a child of plain disks, spans, stripes and partitions`)
  }
  return p
}

function containsRedundancy(node: LayoutNode): boolean {
  if (node.kind === 'mirror' || node.kind === 'raid5') return true
  if (node.kind === 'disk') return false
  return node.kind === 'partition' ? containsRedundancy(node.child) : node.children.some(containsRedundancy)
}

/**
 * The layer child `node` built anew over the volume's disks, `fresh` in place of member `uuid`:
 * the device a rebuild copies the child onto. The other disks are the same open devices the old
 * child uses (the old child is left unclosed by the mirror for that reason; the volume's close
 * closes every disk).
 */
function buildChild(v: AssembledVolume, node: LayoutNode, swap: { from: string; to: string }, fresh: Disk): BlockDevice {
  switch (node.kind) {
    case 'disk': {
      // `node` is the layout before the swap: the old member's leaf stands for the new one.
      const uuid = node.member === swap.from ? swap.to : node.member
      const m = v.config.members.find((r) => r.uuid === uuid)
      if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `member ${uuid} is not in the configuration`)
      const dev = uuid === swap.to ? fresh.dev : v.disks.find((d) => d.uuid === uuid)?.dev
      if (dev === undefined) throw new VolumeError('VOLUME_MEMBER', `member ${uuid} is not among the disks`)
      return new PartitionDevice(dev, MEMBER_RESERVED, m.size)
    }
    case 'partition':
      return new PartitionDevice(buildChild(v, node.child, swap, fresh), node.offset, node.size)
    case 'span':
      return new SpanDevice(node.children.map((k) => buildChild(v, k, swap, fresh)))
    case 'stripe':
      return new StripeDevice(node.children.map((k) => buildChild(v, k, swap, fresh)), { unit: node.unit ?? DEFAULT_UNIT })
    default:
      throw new VolumeError('VOLUME_LAYOUT', `replace rebuilds no ${node.kind} inside a redundant layer's child`)
  }
}

/**
 * Puts `disk` in place of member `index` and rebuilds while the volume keeps serving
 * (replaceMember records the swap, rebuildMember has the layer copy or recompute the data, then
 * records the new member ok). RAID-5 rebuilds only a child it no longer uses, so one still in
 * service is failed first; a mirror takes any leg. Where the member's disk is the layer's whole
 * child, the rebuild is checkpointed in the configuration (the next read-write open continues
 * it); a child holding more disks (a stripe leg) is rebuilt whole, without checkpoints, and a
 * stop means a full rebuild from a new replace. Refused before anything changes when the layer
 * could not rebuild (no other whole copy).
 */
export async function replaceVolumeMember(v: AssembledVolume, index: number, disk: Disk, opts: RebuildOptions = {}): Promise<{ uuid: string; config: VolumeConfig; place: MemberPlace }> {
  const p = checkReplace(v, index)
  const { place, layer } = p
  const c = v.config
  refuseMemberPath(v, disk.path)
  const size = c.members[index]?.size ?? 0
  const swapped = await replaceMember(v, p.uuid, disk)
  if (layer instanceof Raid5Device && layer.status().members[place]?.state !== 'failed') layer.fail(place)
  if (p.sole) {
    // Checkpointed in the configuration: if the process dies, the next read-write open of the volume continues from the last checkpoint.
    const dev = wrapPartitions(p.child, new PartitionDevice(disk.dev, MEMBER_RESERVED, size))
    await rebuildMember(v, swapped.uuid, layer, place, dev, opts)
  } else {
    const child = buildChild(v, p.child, { from: p.uuid, to: swapped.uuid }, { path: disk.path, dev: disk.dev })
    // A checkpoint counts bytes of the child, not of the member's disk: none is recorded.
    const mirrorOpts: LegReplaceOptions = { ...opts, checkpointBytes: Number.MAX_SAFE_INTEGER, keepOld: true }
    await rebuildMember(v, swapped.uuid, layer, place, child, mirrorOpts)
  }
  return { uuid: swapped.uuid, config: v.config, place: p }
}

/** The member's data area under the partitions its layout puts between it and the layer. */
function wrapPartitions(node: LayoutNode, inner: BlockDevice): BlockDevice {
  return node.kind === 'partition' ? new PartitionDevice(wrapPartitions(node.child, inner), node.offset, node.size) : inner
}
