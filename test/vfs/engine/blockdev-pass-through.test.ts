import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'

t.test('every call reaches the inner device unchanged, errors and close included', async (t) => {
  const inner = new MemoryDevice(8192, { sectorSize: 4096 })
  const dev = new PassThroughDevice(inner)
  t.equal(dev.inner, inner)
  t.same([dev.size, dev.sectorSize, dev.readOnly], [8192, 4096, false])
  await dev.write(4090, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))
  t.strictSame(await inner.read(4090, 8), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), 'the write landed on the inner device at the same offset')
  t.strictSame(await dev.read(4092, 4), Buffer.from([3, 4, 5, 6]))
  const into = Buffer.alloc(3)
  await dev.readInto(4095, into)
  t.strictSame(into, Buffer.from([6, 7, 8]))
  await dev.flush()
  await t.rejects(dev.read(8190, 4), { code: 'BLOCKDEV_RANGE' }, "the inner device's range check is the pass-through's")
  await dev.close()
  await t.rejects(inner.read(0, 1), { code: 'BLOCKDEV_CLOSED' }, 'close closes the inner device')
  t.equal(new PassThroughDevice(new MemoryDevice(4096, { readOnly: true })).readOnly, true)
})

t.test('a subclass overrides only what it changes; the rest still delegates', async (t) => {
  class Doubling extends PassThroughDevice {
    override get size(): number {
      return this.inner.size * 2
    }
  }
  const inner = new MemoryDevice(4096)
  const dev = new Doubling(inner)
  t.equal(dev.size, 8192)
  await dev.write(0, Buffer.from([9]))
  t.strictSame(await inner.read(0, 1), Buffer.from([9]))
})
