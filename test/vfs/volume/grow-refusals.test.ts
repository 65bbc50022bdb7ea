/*
 * What growVolume (vfs/volume/grow.ts) refuses, and that a refusal writes nothing: a volume of
 * nested layers, a volume keeping a snapshot store at its end, a member failed (in the
 * configuration) or absent (not among the disks given). A disk added to a mirror is refused in
 * grow.test.ts, the reshape's own refusals are in reshape.test.ts; each message here is exact.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import type { LayoutNode } from '../../../vfs/volume/config.ts'
import { createVolume, updateConfig } from '../../../vfs/volume/create-volume.ts'
import { LAYERS } from '../../../vfs/volume/factory.ts'
import { growVolume } from '../../../vfs/volume/grow.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'
import { memoryDisks, seededRandom } from './assemble-helpers.ts'

const MiB = 1024 * 1024
const disk = (member: string): LayoutNode => ({ kind: 'disk', member })

/** Every disk's bytes, to prove a refusal wrote nothing. */
function images(disks: readonly (Disk & { dev: MemoryDevice })[]): Buffer[] {
  return disks.map((d) => Buffer.from(d.dev.toBuffer()))
}

function unchanged(t: Test, disks: readonly (Disk & { dev: MemoryDevice })[], before: readonly Buffer[], what: string): void {
  t.ok(images(disks).every((b, i) => b.equals(before[i] ?? Buffer.alloc(0))), `${what}: not a byte written`)
}

t.test('a volume of nested layers is refused', async (t) => {
  const disks = memoryDisks('n', 4, MEMBER_RESERVED + 2 * MiB)
  const made = await createVolume('nest', 'span', disks, { random: seededRandom('nest') })
  await updateConfig(made, (c) => {
    const u = c.members.map((m) => m.uuid)
    const root: LayoutNode = { kind: 'mirror', children: [{ kind: 'stripe', children: [disk(u[0] ?? ''), disk(u[1] ?? '')] }, { kind: 'stripe', children: [disk(u[2] ?? ''), disk(u[3] ?? '')] }] }
    return { ...c, root }
  })
  const before = images(disks)
  const v = await assembleVolume(disks, LAYERS)
  await t.rejects(growVolume(v, { size: 'max' }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: grow handles a volume of one level over its disks (span, stripe, mirror or raid5); volume nest is a mirror with nested layers',
  })
  unchanged(t, disks, before, 'nested')
})

t.test('a volume keeping a snapshot store is refused: the store sits at the end grow would move', async (t) => {
  const disks = memoryDisks('s', 3, MEMBER_RESERVED + 4 * MiB)
  const made = await createVolume('withstore', 'raid5', disks, { snapshotStore: { bytes: 2 * MiB }, layers: LAYERS, random: seededRandom('store') })
  const before = images(disks)
  await t.rejects(growVolume(made, { size: 'max' }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: volume withstore keeps a snapshot store at its end, which growing would move; grow does not relocate it',
  })
  const [extra] = memoryDisks('x', 1, MEMBER_RESERVED + 4 * MiB)
  await t.rejects(growVolume(made, { add: extra === undefined ? [] : [extra] }), { code: 'VOLUME_LAYOUT', message: /keeps a snapshot store at its end/ }, 'also when a disk is added')
  unchanged(t, disks, before, 'store')
})

t.test('a member failed in the configuration, or not given, is refused', async (t) => {
  const disks = memoryDisks('f', 3, MEMBER_RESERVED + 2 * MiB)
  const made = await createVolume('deg', 'raid5', disks, { random: seededRandom('deg') })
  const lost = made.config.members[1]?.uuid ?? ''
  await updateConfig(made, (c) => ({ ...c, members: c.members.map((m) => (m.uuid === lost ? { ...m, state: 'failed' as const, reason: 'failed by the test' } : m)) }))
  const before = images(disks)
  await t.rejects(growVolume(made, { size: 'max' }), { code: 'VOLUME_LAYOUT', message: `VOLUME_LAYOUT: grow needs every member in sync: member 1 (${lost}) is failed` })
  unchanged(t, disks, before, 'failed member')

  const whole = memoryDisks('a', 3, MEMBER_RESERVED + 2 * MiB)
  const second = await createVolume('abs', 'mirror', whole, { random: seededRandom('abs') })
  const absent = second.config.members[2]?.uuid ?? ''
  const two = await assembleVolume(whole.slice(0, 2), LAYERS)
  const kept = images(whole)
  await t.rejects(growVolume(two, { size: 'max' }), { code: 'VOLUME_INCOMPLETE', message: `VOLUME_INCOMPLETE: grow needs every member present: member 2 (${absent}) is not among the disks given` })
  unchanged(t, whole, kept, 'absent member')
})
