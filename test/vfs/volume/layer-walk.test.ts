/*
 * redundantChildren: the layout and the running layers walked side by side, so a member a
 * nested layer fails is found with its place in the tree, and with its disk when it is one.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { LayoutNode } from '../../../vfs/volume/config.ts'
import { redundantChildren } from '../../../vfs/volume/layer-walk.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { StripeDevice } from '../../../vfs/volume/stripe.ts'

const MiB = 1024 * 1024
const disk = (member: string): LayoutNode => ({ kind: 'disk', member })

t.test('a mirror of a stripe and a RAID-5: paths, states, the disk when there is one', async (t) => {
  const layout: LayoutNode = {
    kind: 'mirror',
    children: [
      { kind: 'stripe', children: [disk('a'), disk('b')] },
      { kind: 'raid5', children: [disk('c'), { kind: 'partition', offset: 0, size: MiB, child: disk('d') }, disk('e')] },
    ],
  }
  const stripe = new StripeDevice([new MemoryDevice(MiB), new MemoryDevice(MiB)])
  const raid5 = new Raid5Device([new MemoryDevice(MiB), new PartitionDevice(new MemoryDevice(2 * MiB), 0, MiB), new MemoryDevice(MiB)])
  const top = new MirrorDevice([stripe, raid5])
  t.teardown(() => top.close())
  t.strictSame(redundantChildren(layout, top).map((c) => [c.path, c.state, c.member ?? null, c.members]), [
    ['mirror[0]', 'ok', null, ['a', 'b']],
    ['mirror[1]', 'ok', null, ['c', 'd', 'e']],
    ['mirror[1]/raid5[0]', 'ok', 'c', ['c']],
    ['mirror[1]/raid5[1]', 'ok', 'd', ['d']],
    ['mirror[1]/raid5[2]', 'ok', 'e', ['e']],
  ])
  raid5.fail(1)
  top.fail(0)
  const failed = redundantChildren(layout, top).filter((c) => c.state === 'failed')
  t.strictSame(failed.map((c) => [c.path, c.member ?? null, c.reason]), [
    ['mirror[0]', null, 'failed by hand'],
    ['mirror[1]/raid5[1]', 'd', 'failed by request'],
  ], 'the stripe leg names no one disk; the partition of disk d does')
})

t.test('a layout whose layers do not match (a subtree missing at assembly) stops the walk there', async (t) => {
  const layout: LayoutNode = { kind: 'mirror', children: [{ kind: 'stripe', children: [disk('a'), disk('b')] }, disk('c')] }
  const top = new MirrorDevice([new MemoryDevice(2 * MiB), new MemoryDevice(2 * MiB)])
  t.teardown(() => top.close())
  t.strictSame(redundantChildren(layout, top).map((c) => c.path), ['mirror[0]', 'mirror[1]'])
})
