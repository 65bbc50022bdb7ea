import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { pattern } from './volume-helpers.ts'

async function setup(): Promise<{ inner: MemoryDevice; dev: FaultDevice }> {
  const inner = new MemoryDevice(64 * 1024)
  await inner.write(0, pattern(64 * 1024, 3))
  return { inner, dev: new FaultDevice(inner) }
}

t.test('eio by range hits only overlapping operations of the listed ops', async (t) => {
  const { inner, dev } = await setup()
  dev.inject({ kind: 'eio', ops: ['read'], offset: 4096, length: 512 })
  await t.rejects(dev.read(4096, 1), { code: 'EIO', errno: -5 })
  await t.rejects(dev.read(4000, 100), { code: 'EIO' }, 'overlapping from below')
  await t.rejects(dev.readInto(4607, Buffer.alloc(10)), { code: 'EIO' }, 'readInto too, last byte of the range')
  t.same(await dev.read(4608, 512), pattern(64 * 1024, 3).subarray(4608, 5120), 'just past the range reads')
  t.same(await dev.read(3584, 512), pattern(64 * 1024, 3).subarray(3584, 4096), 'just before the range reads')
  await dev.write(4096, Buffer.alloc(512, 1))
  t.same(await inner.read(4096, 512), Buffer.alloc(512, 1), 'writes are not listed: they pass')
  await dev.flush()
})

t.test('eio on writes and flush, without range, hits every offset', async (t) => {
  const { inner, dev } = await setup()
  dev.inject({ kind: 'eio', ops: ['write', 'flush'] })
  await t.rejects(dev.write(0, Buffer.alloc(1, 9)), { code: 'EIO' })
  await t.rejects(dev.write(60000, Buffer.alloc(1, 9)), { code: 'EIO' })
  await t.rejects(dev.flush(), { code: 'EIO' })
  t.equal((await inner.read(0, 1))[0], pattern(1, 3)[0], 'the failed write did not reach the device')
  t.same(await dev.read(0, 16), pattern(16, 3), 'reads still pass')
})

t.test('gone fails everything with ENXIO until healed', async (t) => {
  const { dev } = await setup()
  dev.inject({ kind: 'gone' })
  t.equal(dev.gone, true)
  await t.rejects(dev.read(0, 1), { code: 'ENXIO', errno: -6 })
  await t.rejects(dev.write(0, Buffer.alloc(1)), { code: 'ENXIO' })
  await t.rejects(dev.flush(), { code: 'ENXIO' })
  dev.heal()
  t.equal(dev.gone, false)
  t.same(await dev.read(0, 8), pattern(8, 3))
})

t.test('corrupt inverts exactly the bytes inside its range, reads only', async (t) => {
  const { inner, dev } = await setup()
  dev.inject({ kind: 'corrupt', offset: 1000, length: 24 })
  const got = await dev.read(990, 40)
  const want = pattern(64 * 1024, 3).subarray(990, 1030)
  for (let i = 0; i < 40; i++) {
    const inRange = i >= 10 && i < 34
    if (got[i] !== (inRange ? (want[i] ?? 0) ^ 0xff : want[i])) t.fail(`byte ${990 + i}: ${got[i]}`)
  }
  t.same(got.subarray(0, 10), want.subarray(0, 10), 'before: intact')
  t.same(got.subarray(34), want.subarray(34), 'after: intact')
  t.equal(got[10], (want[10] ?? 0) ^ 0xff, 'first byte of range inverted')
  const into = Buffer.alloc(4)
  await dev.readInto(1022, into)
  t.same(into, Buffer.from([(want[32] ?? 0) ^ 0xff, (want[33] ?? 0) ^ 0xff, want[34] ?? 0, want[35] ?? 0]), 'readInto: range end cut exactly')
  t.same(await inner.read(1000, 24), want.subarray(10, 34), 'the medium is untouched')
  t.same(await dev.read(2000, 8), pattern(64 * 1024, 3).subarray(2000, 2008), 'outside the range: exact')
  dev.heal()
  t.same(await dev.read(990, 40), want, 'healed')
})

t.test('armAfter fires at the counted operation', async (t) => {
  const { dev } = await setup()
  dev.armAfter(3, { kind: 'eio' })
  t.equal(dev.ops, 0)
  await dev.read(0, 1)
  await dev.write(0, Buffer.alloc(1, 5))
  t.equal(dev.ops, 2)
  await t.rejects(dev.flush(), { code: 'EIO' }, 'the third operation fails')
  await t.rejects(dev.read(0, 1), { code: 'EIO' }, 'and every one after')
  dev.heal()
  t.same(await dev.read(0, 1), Buffer.from([5]))
  dev.armAfter(1, { kind: 'gone' })
  await t.rejects(dev.read(0, 1), { code: 'ENXIO' })
  t.equal(dev.gone, true)
  dev.heal()
  dev.armAfter(2, { kind: 'eio' })
  dev.heal()
  await dev.read(0, 1)
  await dev.read(0, 1)
  t.pass('heal drops pending faults too')
})

t.test('size, sector size and read-only come from the inner device; close closes it', async (t) => {
  const inner = new MemoryDevice(8192, { sectorSize: 4096, readOnly: true })
  const dev = new FaultDevice(inner)
  t.equal(dev.size, 8192)
  t.equal(dev.sectorSize, 4096)
  t.equal(dev.readOnly, true)
  await dev.close()
  await t.rejects(inner.read(0, 1), { code: 'BLOCKDEV_CLOSED' })
})

t.test('corrupt without a range, or with an offset and no length, inverts to the end', async (t) => {
  const { dev } = await setup()
  const want = pattern(64 * 1024, 3)
  dev.inject({ kind: 'corrupt' })
  t.same(await dev.read(10, 3), Buffer.from([0, 1, 2].map((i) => (want[10 + i] ?? 0) ^ 0xff)), 'every byte of every read')
  dev.heal()
  dev.inject({ kind: 'corrupt', offset: 100 })
  const got = await dev.read(98, 4)
  t.same(got, Buffer.from([want[98] ?? 0, want[99] ?? 0, (want[100] ?? 0) ^ 0xff, (want[101] ?? 0) ^ 0xff]), 'from the offset on')
  t.same(await dev.read(60000, 1), Buffer.from([(want[60000] ?? 0) ^ 0xff]), 'far past it too')
})

t.test('a ranged fault listing flush hits every flush (a flush covers the whole device)', async (t) => {
  const { dev } = await setup()
  dev.inject({ kind: 'eio', ops: ['flush', 'write'], offset: 4096, length: 512 })
  await t.rejects(dev.flush(), { code: 'EIO' })
  await dev.write(0, Buffer.alloc(512))
  await t.rejects(dev.write(4096, Buffer.alloc(1)), { code: 'EIO' })
  dev.heal()
  dev.inject({ kind: 'eio', offset: 8192 })
  await t.rejects(dev.read(60000, 1), { code: 'EIO' }, 'an offset without length runs to the end')
  t.same(await dev.read(0, 1), Buffer.from([0]), 'outside the range: the write of zeros above')
})
