import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import type { Layer } from '../../../vfs/volume/layer.ts'
import { CountingDevice } from './volume-helpers.ts'

/** Builds a layer over the given fresh member devices; `count` of them, each `memberSize` bytes. */
export interface LayerMaker {
  readonly count: number
  readonly memberSize: number
  make(members: BlockDevice[]): Layer
}

/**
 * The BlockDevice contract every layer owes (block-device.ts): ranges outside [0, size) reject
 * with BLOCKDEV_RANGE, a closed layer rejects with BLOCKDEV_CLOSED, a read-only member makes the
 * layer read-only, flush reaches every member, close closes every member once.
 */
export async function layerContract(t: Test, maker: LayerMaker): Promise<void> {
  const counting = Array.from({ length: maker.count }, () => new CountingDevice(new MemoryDevice(maker.memberSize)))
  const layer = maker.make(counting)
  const size = layer.size
  t.equal(layer.readOnly, false)
  t.equal(layer.members.length, maker.count, 'members are the devices given')
  for (const length of [-1, 0.5, 2 ** 40, Number.NaN]) {
    await t.rejects(layer.read(0, length), { code: 'BLOCKDEV_RANGE' }, `read of ${length} bytes refused before any allocation`)
  }
  for (const [offset, length] of [[-1, 1], [size, 1], [size - 1, 2], [0.5, 1], [0, size + 1], [Number.MAX_SAFE_INTEGER, 1]] as const) {
    await t.rejects(layer.read(offset, length), { code: 'BLOCKDEV_RANGE' }, `read ${offset}+${length}`)
    await t.rejects(layer.readInto(offset, Buffer.alloc(length)), { code: 'BLOCKDEV_RANGE' }, `readInto ${offset}+${length}`)
    await t.rejects(layer.write(offset, Buffer.alloc(length)), { code: 'BLOCKDEV_RANGE' }, `write ${offset}+${length}`)
  }
  t.same(await layer.read(size, 0), Buffer.alloc(0), 'an empty read at the end is inside')
  await layer.write(size - 3, Buffer.from([1, 2, 3]))
  t.same(await layer.read(size - 3, 3), Buffer.from([1, 2, 3]), 'the last bytes round-trip')
  await layer.flush()
  t.ok(counting.every((c) => c.flushes >= 1), 'flush reaches every member')
  t.equal(layer.status().members.length, maker.count)
  t.equal(layer.status().size, size)
  await layer.close()
  await layer.close()
  t.pass('a second close is a no-op')
  await t.rejects(layer.read(0, 1), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(layer.readInto(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(layer.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(layer.flush(), { code: 'BLOCKDEV_CLOSED' })
  for (const c of counting) await t.rejects(c.read(0, 1), { code: 'BLOCKDEV_CLOSED' }, 'close closed the member')

  const ro = Array.from({ length: maker.count }, (_, i) => new MemoryDevice(maker.memberSize, { readOnly: i === maker.count - 1 }))
  const roLayer = maker.make(ro)
  t.equal(roLayer.readOnly, true, 'one read-only member makes the layer read-only')
  await t.rejects(roLayer.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_READONLY' })
  t.same(await roLayer.read(0, 4), Buffer.alloc(4), 'and it still reads')
  await roLayer.close()
}
