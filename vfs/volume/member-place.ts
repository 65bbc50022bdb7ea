import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { topLayer } from './assemble.ts'
import type { AssembledVolume } from './assemble.ts'
import type { LayoutNode } from './config.ts'
import { membersUnder } from './config.ts'
import { VolumeError } from './layer.ts'
import { MirrorDevice } from './mirror.ts'
import { Raid5Device } from './raid5.ts'

/**
 * Where a member disk sits in a running volume, as `fail` and `replace` need it: the nearest
 * mirror or RAID-5 above it (the layer that survives its loss) and the child of that layer the
 * disk is in. In a mirror of stripes that child is the whole stripe: losing one of its disks
 * loses the leg, as md's RAID-1 over RAID-0 does. A disk with no redundant layer above it (a span
 * or stripe alone) has no place: nothing survives its loss.
 *
 * A member is named by its index in the configuration or by its place in the layout tree:
 * "0.1" is child 1 of child 0 of the root (leg 0 of a mirror, member 1 of the stripe in it);
 * partitions are passed through, so "2" in a RAID-5 of partitions is the disk under its third.
 */
export interface MemberPlace {
  readonly index: number
  readonly uuid: string
  readonly layer: MirrorDevice | Raid5Device
  /** The child of `layer` the member is in. */
  readonly place: number
  /** That child's layout: the disk itself (maybe under partitions), or a subtree holding it. */
  readonly child: LayoutNode
  /** Every child of the layer in the layout (`child` among them). */
  readonly siblings: readonly LayoutNode[]
  /** Where the child sits: `mirror[0]`, `raid5[2]`, `raid5[1]/mirror[0]`. */
  readonly path: string
  /** The child is the member's disk alone (through partitions): a rebuild copies only that disk. */
  readonly sole: boolean
}

const ADDRESS = /^\d{1,2}(\.\d{1,2}){0,7}$/

function skipPartitions(node: LayoutNode): LayoutNode {
  return node.kind === 'partition' ? skipPartitions(node.child) : node
}

/** The configuration index a layout address ("0.1") names; VOLUME_MEMBER when it names no disk. */
export function memberAtAddress(v: AssembledVolume, address: string): number {
  if (!ADDRESS.test(address)) throw new VolumeError('VOLUME_MEMBER', `${JSON.stringify(address.slice(0, 64))} is not a layout address (child indices joined by dots: 0.1)`)
  let node = skipPartitions(v.config.root)
  for (const part of address.split('.')) {
    const k = Number(part)
    const child = node.kind === 'disk' || node.kind === 'partition' ? undefined : node.children[k]
    if (child === undefined) throw new VolumeError('VOLUME_MEMBER', `volume ${v.config.name} has nothing at ${address}: a ${node.kind} has ${node.kind === 'disk' || node.kind === 'partition' ? 'no' : node.children.length} children`)
    node = skipPartitions(child)
  }
  if (node.kind !== 'disk') throw new VolumeError('VOLUME_MEMBER', `${address} of volume ${v.config.name} is a ${node.kind} of ${membersUnder(node).length} members, not a disk (name one of them: ${address}.0, ...)`)
  const member = node.member
  return v.config.members.findIndex((m) => m.uuid === member)
}

function membersOf(dev: BlockDevice): readonly BlockDevice[] {
  return 'members' in dev && Array.isArray(dev.members) ? (dev.members as BlockDevice[]) : []
}

/** Member `index` of the configuration and its place (see MemberPlace); VOLUME_LAYOUT when no redundant layer holds it. */
export function placeOf(v: AssembledVolume, index: number): MemberPlace {
  const c = v.config
  const m = Number.isSafeInteger(index) ? c.members[index] : undefined
  if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `volume ${c.name} has no member ${index} (members 0 … ${c.members.length - 1})`)
  type Found = Omit<MemberPlace, 'index' | 'uuid' | 'sole'>
  // Walks the layout and the built layers side by side (child i of a node is member i of its
  // layer); below a subtree that did not assemble (a MissingDevice) there are no layers, but the
  // nearest one above still holds the member.
  const walk = (node: LayoutNode, dev: BlockDevice | undefined, prefix: string, nearest: Found | undefined): Found | undefined | null => {
    if (node.kind === 'disk') return node.member === m.uuid ? nearest : null
    if (node.kind === 'partition') return walk(node.child, dev === undefined ? undefined : membersOf(dev)[0], prefix, nearest)
    const members = dev === undefined ? [] : membersOf(dev)
    const running = members.length === node.children.length ? members : []
    const redundant = (node.kind === 'mirror' && dev instanceof MirrorDevice) || (node.kind === 'raid5' && dev instanceof Raid5Device) ? dev : undefined
    for (const [k, child] of node.children.entries()) {
      const path = `${prefix}${node.kind}[${k}]`
      const here = redundant === undefined ? nearest : { layer: redundant, place: k, child, siblings: node.children, path }
      const r = walk(child, running[k], `${path}/`, here)
      if (r !== null) return r
    }
    return null
  }
  const found = walk(c.root, topLayer(v), '', undefined)
  if (found == null) {
    throw new VolumeError('VOLUME_LAYOUT', `volume ${c.name} is a ${c.root.kind} with no mirror or RAID-5 above member ${index}: it cannot run without it, so it cannot be failed or replaced`)
  }
  return { ...found, index, uuid: m.uuid, sole: skipPartitions(found.child).kind === 'disk' }
}

/**
 * The other children of the place's layer that are out of service now: failed or rebuilding in
 * the layer, or holding a member the configuration records failed or rebuilding, or one absent
 * at assembly (its stand-in fails only at its first touch).
 */
export function othersOutOfService(v: AssembledVolume, p: MemberPlace): number[] {
  const live = p.layer.status().members
  return p.siblings.flatMap((child, k) => {
    if (k === p.place) return []
    const lost = live[k]?.state !== 'ok' || membersUnder(child).some((u) => v.config.members.find((r) => r.uuid === u)?.state !== 'ok' || v.missing.some((x) => x.uuid === u))
    return lost ? [k] : []
  })
}

/** Refuses a change that would leave the place's layer without what it needs to serve; `message` says what, given what is lost already. */
export function refuseUnsafe(v: AssembledVolume, p: MemberPlace, message: (lost: string) => string): void {
  const others = othersOutOfService(v, p)
  if (p.layer instanceof Raid5Device ? others.length === 0 : others.length < p.siblings.length - 1) return
  const indexOf = (u: string): number => v.config.members.findIndex((r) => r.uuid === u)
  const lost = others.map((k) => {
    const child = p.siblings[k] as LayoutNode
    const under = membersUnder(child).map(indexOf)
    return skipPartitions(child).kind === 'disk' ? `member ${under.join('')}` : `${p.layer.kind} child ${k} (members ${under.join(', ')})`
  })
  throw new VolumeError('VOLUME_FAILED', message(lost.join(', ')))
}
