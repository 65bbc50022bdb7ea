import { randomBytes } from 'node:crypto'
import type { LayoutNode, VolumeConfig } from './config.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { MemberState, RebuildOptions } from './layer.ts'
import { VolumeError } from './layer.ts'
import type { UpdateResult } from './create-volume.ts'
import { updateConfig } from './create-volume.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from './member-format.ts'
import type { Disk, VolumeMembers } from './member-io.ts'

/**
 * The two configuration changes a running volume makes on its own: a member's state changes (a
 * layer reported it failed, a rebuild finished), and a new disk takes a member's place.
 */

function memberOf(config: VolumeConfig, uuid: string): number {
  const index = config.members.findIndex((m) => m.uuid === uuid)
  if (index < 0) throw new VolumeError('VOLUME_MEMBER', `volume ${config.name} has no member ${uuid}`)
  return index
}

/** Records a member's new state (and, for `failed`, why) on every member still in service. */
export function setMemberState(volume: VolumeMembers, uuid: string, state: MemberState, reason?: string): Promise<UpdateResult> {
  return updateConfig(volume, (c) => {
    const index = memberOf(c, uuid)
    return {
      ...c,
      members: c.members.map((m, i) => {
        if (i !== index) return m
        // The old reason goes with the old state.
        const next = { uuid: m.uuid, size: m.size, state }
        return reason === undefined ? next : { ...next, reason }
      }),
    }
  })
}

function swapLeaf(node: LayoutNode, from: string, to: string): LayoutNode {
  switch (node.kind) {
    case 'disk':
      return node.member === from ? { kind: 'disk', member: to } : node
    case 'partition':
      return { ...node, child: swapLeaf(node.child, from, to) }
    default:
      return { ...node, children: node.children.map((c) => swapLeaf(c, from, to)) }
  }
}

/**
 * Puts `disk` in the place of member `uuid` (md's `--replace`, LDM's "repair volume"): the disk
 * gets a new member uuid, state `rebuilding` and the old member's data size, and joins the
 * volume's disks; the old member leaves the configuration, so if its disk comes back it is
 * refused as stale. The caller then rebuilds onto the new member's data area and marks it `ok`.
 * A disk too small for the member's data area: VOLUME_LAYOUT, nothing changed.
 */
export async function replaceMember(volume: VolumeMembers, uuid: string, disk: Disk, random: (bytes: number) => Buffer = randomBytes): Promise<{ uuid: string; result: UpdateResult }> {
  const old = volume.config.members[memberOf(volume.config, uuid)]
  if (old === undefined) throw new VolumeError('VOLUME_MEMBER', `volume ${volume.config.name} has no member ${uuid}`)
  if (disk.dev.size < MEMBER_RESERVED + old.size) {
    throw new VolumeError('VOLUME_LAYOUT', `${disk.path}: ${disk.dev.size} bytes cannot hold member ${uuid}'s ${old.size}-byte data area after the ${MEMBER_RESERVED}-byte reserved area`)
  }
  const fresh = random(16).toString('hex')
  // A bitmap left from the disk's earlier life must not resync regions for nothing.
  await disk.dev.write(INTENT_OFFSET, Buffer.alloc(INTENT_LENGTH))
  volume.disks.push({ path: disk.path, dev: disk.dev, uuid: fresh })
  try {
    const result = await updateConfig(volume, (c) => ({
      ...c,
      root: swapLeaf(c.root, uuid, fresh),
      members: c.members.map((m) => (m.uuid === uuid ? { uuid: fresh, size: m.size, state: 'rebuilding' as const } : m)),
    }))
    return { uuid: fresh, result }
  } catch (err) {
    volume.disks.splice(volume.disks.findIndex((d) => d.uuid === fresh), 1)
    throw err
  }
}

/** Records how far the rebuild of member `uuid` has come (bytes of its data area, rebuilt and flushed). */
export function setRebuildCheckpoint(volume: VolumeMembers, uuid: string, rebuilt: number): Promise<UpdateResult> {
  return updateConfig(volume, (c) => {
    const index = memberOf(c, uuid)
    const m = c.members[index]
    if (m?.state !== 'rebuilding') throw new VolumeError('VOLUME_MEMBER', `member ${index} (${uuid}) of volume ${c.name} is ${m?.state}, not rebuilding`)
    return { ...c, members: c.members.map((r, i) => (i === index ? { uuid: r.uuid, size: r.size, state: r.state, rebuilt } : r)) }
  })
}

/** A mirror or RAID-5 layer, as far as a rebuild needs it. */
export interface RebuildTarget {
  replace(index: number, dev: BlockDevice, opts: RebuildOptions): Promise<number>
}

/**
 * Rebuilds member `uuid` (state `rebuilding`, see replaceMember) onto `dev`, its data area, in
 * place `place` of `layer`, from the checkpoint its configuration records: each checkpoint the
 * layer reaches is written to every member's configuration, so a rebuild cut short (the process
 * killed, the volume closed) continues from there at the next open (openVolumeOn). Marks the
 * member ok at the end. Resolves with the bytes rebuilt this time.
 */
export async function rebuildMember(volume: VolumeMembers, uuid: string, layer: RebuildTarget, place: number, dev: BlockDevice, opts: RebuildOptions = {}): Promise<number> {
  const m = volume.config.members[memberOf(volume.config, uuid)]
  if (m?.state !== 'rebuilding') throw new VolumeError('VOLUME_MEMBER', `member ${uuid} of volume ${volume.config.name} is ${m?.state}, not rebuilding`)
  let bytes: number
  try {
    bytes = await layer.replace(place, dev, {
      ...opts,
      resumeFrom: m.rebuilt ?? 0,
      onCheckpoint: async (rebuilt) => {
        await setRebuildCheckpoint(volume, uuid, rebuilt)
        await opts.onCheckpoint?.(rebuilt)
      },
    })
  } catch (err) {
    // Closed under it: nothing writes the volume any more, so the checkpoint stays true. Any other
    // failure leaves the volume serving without the new member: its checkpoint would lie.
    if (!(err instanceof Error && 'code' in err && err.code === 'BLOCKDEV_CLOSED')) {
      await setMemberState(volume, uuid, 'failed', `rebuild failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500)).catch(() => undefined)
    }
    throw err
  }
  await setMemberState(volume, uuid, 'ok')
  return bytes
}
