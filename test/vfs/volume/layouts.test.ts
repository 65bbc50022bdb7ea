import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { DEFAULT_UNIT } from '../../../vfs/volume/layer.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { SpanDevice } from '../../../vfs/volume/span.ts'
import { StripeDevice } from '../../../vfs/volume/stripe.ts'
import { layerContract } from './layer-contract.ts'
import { pattern } from './volume-helpers.ts'

t.test('partition: an offset window of the inner device', async (t) => {
  const inner = new MemoryDevice(64 * 1024)
  const part = new PartitionDevice(inner, 8192, 16384)
  t.equal(part.size, 16384)
  t.equal(part.sectorSize, 512)
  t.equal(part.kind, 'partition')
  t.strictSame(part.members, [inner])
  await part.write(0, pattern(1000, 1))
  await part.write(16384 - 24, pattern(24, 2))
  const all = await inner.read(0, inner.size)
  t.same(all.subarray(8192, 9192), pattern(1000, 1), 'partition byte 0 is inner byte 8192')
  t.same(all.subarray(8192 + 16384 - 24, 8192 + 16384), pattern(24, 2), 'its last byte is inner byte 24575')
  t.equal(all.subarray(0, 8192).every((b) => b === 0), true, 'nothing before the window')
  t.equal(all.subarray(8192 + 16384).every((b) => b === 0), true, 'nothing after it')
  await inner.write(8192 + 500, Buffer.from([0xaa]))
  t.same(await part.read(500, 1), Buffer.from([0xaa]), 'reads map the same way')
  const into = Buffer.alloc(3)
  await part.readInto(999, into)
  t.same(into, Buffer.from([pattern(1000, 1)[999] ?? 0, 0, 0]))
  t.same(part.status(), { kind: 'partition', size: 16384, degraded: false, failed: false, members: [{ index: 0, state: 'ok' }] })
})

t.test('partition: bounds must be whole inner sectors and fit', async (t) => {
  const inner = new MemoryDevice(16384, { sectorSize: 4096 })
  t.throws(() => new PartitionDevice(inner, 512, 4096), { code: 'VOLUME_LAYOUT' }, 'offset not a 4096 multiple')
  t.throws(() => new PartitionDevice(inner, 4096, 4000), { code: 'VOLUME_LAYOUT' }, 'size not a multiple')
  t.throws(() => new PartitionDevice(inner, 0, 0), { code: 'VOLUME_LAYOUT' }, 'empty')
  t.throws(() => new PartitionDevice(inner, -4096, 4096), { code: 'VOLUME_LAYOUT' }, 'negative offset')
  t.throws(() => new PartitionDevice(inner, 8192, 12288), { code: 'VOLUME_LAYOUT' }, 'past the end')
  t.throws(() => new PartitionDevice(inner, Number.NaN, 4096), { code: 'VOLUME_LAYOUT' })
  t.equal(new PartitionDevice(inner, 12288, 4096).sectorSize, 4096, 'the last sector alone fits')
})

t.test('partition: block-device contract', (t) => layerContract(t, { count: 1, memberSize: 32768, make: (m) => new PartitionDevice(m[0] as BlockDevice, 4096, 16384) }))

t.test('span: members one after another, I/O split at each boundary', async (t) => {
  const m = [new MemoryDevice(4096), new MemoryDevice(8192), new MemoryDevice(2048)]
  const span = new SpanDevice(m)
  t.equal(span.size, 14336)
  t.equal(span.sectorSize, 512)
  t.strictSame(span.pieces(3000, 10000), [
    { member: 0, memberOffset: 3000, bufOffset: 0, length: 1096 },
    { member: 1, memberOffset: 0, bufOffset: 1096, length: 8192 },
    { member: 2, memberOffset: 0, bufOffset: 9288, length: 712 },
  ])
  const data = pattern(10000, 5)
  await span.write(3000, data)
  t.same(await m[0]!.read(3000, 1096), data.subarray(0, 1096), 'member 0 holds the first 1096 bytes at 3000')
  t.same(await m[1]!.read(0, 8192), data.subarray(1096, 9288), 'member 1 the next 8192 from 0')
  t.same(await m[2]!.read(0, 712), data.subarray(9288), 'member 2 the last 712 from 0')
  t.same(await m[2]!.read(712, 1336), Buffer.alloc(1336), 'and nothing more')
  t.same(await span.read(3000, 10000), data, 'a read crossing both boundaries reassembles')
  t.strictSame(span.pieces(4096, 1), [{ member: 1, memberOffset: 0, bufOffset: 0, length: 1 }], 'first byte of member 1')
  t.strictSame(span.pieces(12287, 2), [
    { member: 1, memberOffset: 8191, bufOffset: 0, length: 1 },
    { member: 2, memberOffset: 0, bufOffset: 1, length: 1 },
  ])
  t.throws(() => span.pieces(14336, 1), { code: 'BLOCKDEV_RANGE' })
})

t.test('span: sector size is the largest, and every member whole sectors of it', async (t) => {
  const big = new MemoryDevice(8192, { sectorSize: 4096 })
  t.equal(new SpanDevice([big, new MemoryDevice(4096)]).sectorSize, 4096)
  t.throws(() => new SpanDevice([new MemoryDevice(8192, { sectorSize: 4096 }), new MemoryDevice(2048)]), { code: 'VOLUME_LAYOUT' })
  t.throws(() => new SpanDevice([]), { code: 'VOLUME_LAYOUT' })
  t.equal(new SpanDevice([new MemoryDevice(1024)]).size, 1024, 'one member is a plain pass-through')
})

t.test('span: block-device contract', (t) => layerContract(t, { count: 3, memberSize: 8192, make: (m) => new SpanDevice(m) }))

t.test('stripe: 3 members, unit 4096, a known 5-unit pattern lands round-robin', async (t) => {
  const m = [new MemoryDevice(16384), new MemoryDevice(16384), new MemoryDevice(20480)]
  const stripe = new StripeDevice(m, { unit: 4096 })
  t.equal(stripe.size, 3 * 4 * 4096, 'the smallest member sets the units per member')
  t.equal(stripe.unit, 4096)
  const units = [0, 1, 2, 3, 4].map((u) => Buffer.alloc(4096, 0x10 + u))
  await stripe.write(0, Buffer.concat(units))
  const want = [
    Buffer.concat([units[0]!, units[3]!, Buffer.alloc(8192)]),
    Buffer.concat([units[1]!, units[4]!, Buffer.alloc(8192)]),
    Buffer.concat([units[2]!, Buffer.alloc(16384)]),
  ]
  for (const [i, dev] of m.entries()) t.same(await dev.read(0, dev.size), want[i], `member ${i}: exact bytes`)
  t.same(await stripe.read(0, 5 * 4096), Buffer.concat(units))
  t.strictSame(stripe.pieces(4000, 200), [
    { member: 0, memberOffset: 4000, bufOffset: 0, length: 96 },
    { member: 1, memberOffset: 0, bufOffset: 96, length: 104 },
  ], 'an unaligned I/O splits at the unit boundary')
  t.strictSame(stripe.pieces(3 * 4096 * 3 + 5, 1), [{ member: 0, memberOffset: 3 * 4096 + 5, bufOffset: 0, length: 1 }], 'unit 9 is member 0 unit 3')
  t.strictSame(stripe.pieces(49151, 1), [{ member: 2, memberOffset: 16383, bufOffset: 0, length: 1 }], 'the last byte')
})

t.test('stripe: pieces go to the members in parallel', async (t) => {
  const pending: (() => void)[] = []
  class Gate extends MemoryDevice {
    override async write(offset: number, data: Uint8Array): Promise<void> {
      await new Promise<void>((resolve) => pending.push(resolve))
      return super.write(offset, data)
    }
    override async flush(): Promise<void> {
      await new Promise<void>((resolve) => pending.push(resolve))
    }
  }
  const stripe = new StripeDevice([new Gate(16384), new Gate(16384), new Gate(16384)], { unit: 4096 })
  const write = stripe.write(0, Buffer.alloc(3 * 4096, 1))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(pending.length, 3, 'all three member writes issued before any completed')
  for (const release of pending.splice(0)) release()
  await write
  const flush = stripe.flush()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(pending.length, 3, 'all three flushes in flight at once')
  for (const release of pending.splice(0)) release()
  await flush
})

t.test('stripe: layout errors', async (t) => {
  t.throws(() => new StripeDevice([new MemoryDevice(65536)]), { code: 'VOLUME_LAYOUT' }, 'one member')
  t.throws(() => new StripeDevice([new MemoryDevice(8192), new MemoryDevice(8192)], { unit: 1000 }), { code: 'VOLUME_LAYOUT' }, 'unit not whole sectors')
  t.throws(() => new StripeDevice([new MemoryDevice(8192), new MemoryDevice(8192)], { unit: 0 }), { code: 'VOLUME_LAYOUT' })
  t.throws(() => new StripeDevice([new MemoryDevice(8192), new MemoryDevice(8192)]), { code: 'VOLUME_LAYOUT' }, 'default 64 KiB unit larger than the members')
  t.throws(() => new StripeDevice([new MemoryDevice(8192, { sectorSize: 4096 }), new MemoryDevice(8192)], { unit: 2048 }), { code: 'VOLUME_LAYOUT' }, 'unit below the largest sector')
  const d = new StripeDevice([new MemoryDevice(3 * DEFAULT_UNIT), new MemoryDevice(2 * DEFAULT_UNIT + 512)])
  t.equal(d.unit, DEFAULT_UNIT)
  t.equal(d.size, 4 * DEFAULT_UNIT)
})

t.test('stripe: block-device contract', (t) => layerContract(t, { count: 3, memberSize: 16384, make: (m) => new StripeDevice(m, { unit: 4096 }) }))

t.test('a failing member fails the I/O, after every piece has settled', async (t) => {
  const { FaultDevice } = await import('../../../vfs/engine/blockdev/fault-device.ts')
  const bad = new FaultDevice(new MemoryDevice(16384))
  const good = new MemoryDevice(16384)
  const stripe = new StripeDevice([good, bad], { unit: 4096 })
  bad.inject({ kind: 'eio', ops: ['write'] })
  await t.rejects(stripe.write(0, Buffer.alloc(8192, 7)), { code: 'EIO' })
  t.same(await good.read(0, 4096), Buffer.alloc(4096, 7), 'the other piece still landed (no rollback: the caller must treat the range as unknown)')
  bad.inject({ kind: 'eio', ops: ['flush'] })
  await t.rejects(stripe.flush(), { code: 'EIO' })
})

t.test('sector sizes that do not divide the largest, and spans past a safe integer, are refused', async (t) => {
  const { FaultDevice } = await import('../../../vfs/engine/blockdev/fault-device.ts')
  // A device with 1536-byte sectors (some optical media): 4096 is not a multiple of it.
  class OddSectors extends FaultDevice {
    override get sectorSize(): number {
      return 1536
    }
  }
  const odd = new OddSectors(new MemoryDevice(3 * 4096))
  t.throws(() => new SpanDevice([new MemoryDevice(8192, { sectorSize: 4096 }), odd]), { code: 'VOLUME_LAYOUT', message: /member 1: sector size 1536 does not divide 4096/ })
  t.throws(() => new StripeDevice([odd, new MemoryDevice(8192, { sectorSize: 4096 })], { unit: 4096 }), { code: 'VOLUME_LAYOUT' })
  const huge = 2 ** 52
  t.throws(() => new SpanDevice([new MemoryDevice(huge), new MemoryDevice(huge)]), { code: 'VOLUME_LAYOUT', message: /beyond a safe integer/ })
  const big = new SpanDevice([new MemoryDevice(huge), new MemoryDevice(huge - 4096)])
  await big.write(huge - 2, Buffer.from([1, 2, 3, 4]))
  t.same(await big.read(huge - 2, 4), Buffer.from([1, 2, 3, 4]), 'a 4 PiB sparse span splits at its boundary like a small one')
})

t.test('close closes every member even when one fails, then reports that failure', async (t) => {
  const { ioError } = await import('../../../vfs/engine/blockdev/fault-device.ts')
  class DeadDisk extends MemoryDevice {
    override async close(): Promise<void> {
      await super.close()
      throw ioError('EIO', 'close of a dead disk')
    }
  }
  const after = new MemoryDevice(4096)
  const span = new SpanDevice([new DeadDisk(4096), after])
  await t.rejects(span.close(), { code: 'EIO' })
  await t.rejects(after.read(0, 1), { code: 'BLOCKDEV_CLOSED' }, 'the member after the failing one was closed too')
})
