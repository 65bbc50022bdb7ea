import t from 'tap'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { Layer } from '../../../vfs/volume/layer.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { SpanDevice } from '../../../vfs/volume/span.ts'
import { StripeDevice } from '../../../vfs/volume/stripe.ts'
import { below, contents, randomBytes, randomRange, rng, seedOf } from './volume-helpers.ts'

const seed = seedOf()
t.comment(`seed ${seed} (TSNFS_VOLUME_SEED to reproduce)`)

const KiB = 1024
const mem = (n: number): MemoryDevice => new MemoryDevice(n * KiB)

/** Each layer, and nestings of them, built fresh. */
const LAYERS: Record<string, () => Layer> = {
  partition: () => new PartitionDevice(mem(512), 64 * KiB, 320 * KiB),
  span: () => new SpanDevice([mem(96), mem(32), mem(200), mem(4)]),
  stripe: () => new StripeDevice([mem(128), mem(128), mem(140)], { unit: 8 * KiB }),
  mirror: () => new MirrorDevice([mem(256), mem(260), mem(256)]),
  'mirror of stripes': () =>
    new MirrorDevice([new StripeDevice([mem(64), mem(64)], { unit: 4 * KiB }), new StripeDevice([mem(48), mem(48), mem(48)], { unit: 16 * KiB })]),
  'span of partitions': () => {
    // Two partitions of one disk, out of order, and one of another: closing the span closes the shared disk twice (close is idempotent).
    const disk = mem(512)
    return new SpanDevice([new PartitionDevice(disk, 200 * KiB, 100 * KiB), new PartitionDevice(disk, 4 * KiB, 64 * KiB), new PartitionDevice(mem(64), 60 * KiB, 4 * KiB)])
  },
  'stripe of mirrors': () => new StripeDevice([new MirrorDevice([mem(64), mem(64)]), new MirrorDevice([mem(72), mem(64)])], { unit: 4 * KiB }),
}

for (const [name, make] of Object.entries(LAYERS)) {
  t.test(`${name}: random I/O matches a flat model`, async (t) => {
    let h = 7
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0
    const r = rng(seed ^ h)
    const layer = make()
    const model = new MemoryDevice(layer.size, { sectorSize: layer.sectorSize })
    let mismatches = 0
    for (let op = 0; op < 300; op++) {
      const roll = r()
      if (roll < 0.45) {
        const { offset, length } = randomRange(r, layer.size, 40 * KiB, below(r, 2) === 0 ? 1 : layer.sectorSize)
        const data = randomBytes(r, length)
        await Promise.all([layer.write(offset, data), model.write(offset, data)])
      } else if (roll < 0.8) {
        const { offset, length } = randomRange(r, layer.size, 40 * KiB)
        if (!(await layer.read(offset, length)).equals(await model.read(offset, length))) mismatches++
      } else if (roll < 0.95) {
        // Reads in parallel, into subarrays of one buffer, as the buffer cache does.
        const ranges = Array.from({ length: 4 }, () => randomRange(r, layer.size, 8 * KiB))
        const bufs = ranges.map((g) => Buffer.alloc(g.length))
        await Promise.all(ranges.map((g, i) => layer.readInto(g.offset, bufs[i]!)))
        for (const [i, g] of ranges.entries()) if (!bufs[i]!.equals(await model.read(g.offset, g.length))) mismatches++
      } else {
        await layer.flush()
      }
    }
    t.equal(mismatches, 0, 'every read equal to the model')
    t.ok((await contents(layer)).equals(await contents(model)), 'whole device equal to the model')
    t.equal(layer.status().degraded, false)
    await layer.close()
    for (const m of layer.members) await t.rejects(m.flush(), { code: 'BLOCKDEV_CLOSED' }, 'close reached the members')
  })
}

t.test('nested layers close every device of the tree once', async (t) => {
  const leaves: BlockDevice[] = []
  const leaf = (n: number): MemoryDevice => {
    const d = mem(n)
    leaves.push(d)
    return d
  }
  const tree = new MirrorDevice([new StripeDevice([leaf(64), leaf(64)], { unit: 4 * KiB }), new SpanDevice([new PartitionDevice(leaf(128), 0, 64 * KiB), leaf(64)])])
  t.equal(tree.size, 128 * KiB)
  await tree.write(0, Buffer.alloc(tree.size, 3))
  await tree.close()
  for (const d of leaves) await t.rejects(d.read(0, 1), { code: 'BLOCKDEV_CLOSED' })
})
