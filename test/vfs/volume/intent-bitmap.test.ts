import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { bitmapCopyLength, DEFAULT_REGION, IntentBitmap } from '../../../vfs/volume/intent-bitmap.ts'
import type { BitmapPlace } from '../../../vfs/volume/intent-bitmap.ts'

const REGION = 4096
const VOLUME = 100 * REGION + 123 // 101 regions, the last one short
const LENGTH = bitmapCopyLength(VOLUME, { regionSize: REGION })

function places(devs: readonly BlockDevice[], offset = 512): BitmapPlace[] {
  return devs.map((dev) => ({ dev, offset, length: LENGTH }))
}

async function fresh(count: number): Promise<MemoryDevice[]> {
  const devs = Array.from({ length: count }, () => new MemoryDevice(512 + LENGTH + 512))
  await IntentBitmap.format(places(devs), VOLUME, { regionSize: REGION })
  return devs
}

t.test('geometry: two slots of a header and the bits, sector-rounded; the default region', async (t) => {
  t.equal(LENGTH, 2 * 512, '64 header bytes + 13 bytes of bits fit one sector per slot')
  t.equal(bitmapCopyLength(2 ** 40), 2 * 2560, '1 TiB in 64 MiB regions: 2 KiB of bits + the header, rounded up')
  t.equal(DEFAULT_REGION, 64 * 1024 * 1024)
  const devs = await fresh(1)
  const bm = await IntentBitmap.open(places(devs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  t.equal(bm.regionSize, REGION)
  t.strictSame(bm.dirtyAtOpen(), [])
  const slot = await devs[0]!.read(512, 64)
  t.equal(slot.subarray(0, 8).toString('latin1'), 'TSNFSWIB')
  t.equal(slot.readUInt32LE(8), 1, 'format 1')
  t.equal(slot.readBigUInt64LE(16), 0n, 'slot 0 holds sequence 0')
  t.equal(slot.readBigUInt64LE(24), BigInt(REGION))
  t.equal(slot.readBigUInt64LE(32), BigInt(VOLUME))
  t.equal(slot.readUInt32LE(40), 101)
})

t.test('mark makes regions durably dirty; settle clears them; reopening shows each', async (t) => {
  const devs = await fresh(2)
  const bm = await IntentBitmap.open(places(devs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  await bm.mark(REGION - 1, 2) // regions 0 and 1
  await bm.mark(100 * REGION, 1) // the short last region
  await t.rejects(bm.mark(VOLUME - 1, 2), { code: 'BLOCKDEV_RANGE' })
  const again = await IntentBitmap.open(places(devs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  t.strictSame(again.dirtyAtOpen(), [
    { offset: 0, length: 2 * REGION },
    { offset: 100 * REGION, length: 123 },
  ])
  await bm.settle()
  t.strictSame(bm.dirtyNow(), [])
  const clean = await IntentBitmap.open(places(devs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  t.strictSame(clean.dirtyAtOpen(), [])
  t.strictSame(again.dirtyNow(), again.dirtyAtOpen(), 'bits found dirty stay dirty until a settle')
  await bm.close()
  await t.rejects(bm.mark(0, 1), { code: 'VOLUME_BITMAP' })
})

t.test('the bit is durable before mark resolves, and concurrent marks of one clean region share a write and a flush', async (t) => {
  const mems = await fresh(2)
  const recs = mems.map((m) => new RecordingDevice(m))
  const bm = await IntentBitmap.open(places(recs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  let resolvedAt = -1
  const marks = [bm.mark(10, 5), bm.mark(20, 100), bm.mark(REGION - 50, 20)].map((p) =>
    p.then(() => {
      resolvedAt = Math.max(resolvedAt, recs[0]!.flushes.length)
    }),
  )
  await Promise.all(marks)
  for (const rec of recs) {
    t.equal(rec.writes.length, 1, 'one slot write per copy for three marks of region 0')
    t.equal(rec.flushes.length, 1, 'one flush per copy')
    t.ok(rec.flushes[0]!.called > rec.writes[0]!.completed, 'the flush covers the write')
    t.equal(rec.durable(1).length, 1, 'the write is durable once the flush is')
  }
  t.equal(resolvedAt, 1, 'the marks resolved after the flush')
  await bm.mark(0, 1)
  t.equal(recs[0]!.writes.length, 1, 'a durable dirty region costs no I/O')
  await bm.settle()
  t.equal(recs[0]!.writes.length, 2, 'settle writes the cleared bits')
  t.equal(recs[0]!.flushes.length, 1, 'and does not flush')
  await bm.mark(0, 1)
  t.equal(recs[0]!.flushes.length, 3, 'the next mark first flushes the unflushed slot, then its own')
})

t.test('per batch, as md: marks of different regions share a write; marks during a write share the next one', async (t) => {
  const mems = await fresh(2)
  const recs = mems.map((m) => new RecordingDevice(m))
  const bm = await IntentBitmap.open(places(recs), VOLUME, { regionSize: REGION, quietSettles: 1 })
  // Three clean regions marked together: one slot write and one flush per copy.
  await Promise.all([bm.mark(3 * REGION, 10), bm.mark(7 * REGION, 10), bm.mark(50 * REGION, 10)])
  t.equal(recs[0]!.writes.length, 1, 'one slot write for three regions marked together')
  t.equal(recs[0]!.flushes.length, 1, 'one flush')
  // One mark starts a write; four more regions are marked while it is in flight: they all wait
  // for one more write (the bits set meanwhile), not one each.
  const first = bm.mark(10 * REGION, 10)
  await Promise.resolve()
  const during = [11, 12, 13, 14].map((r) => bm.mark(r * REGION, 10))
  await Promise.all([first, ...during])
  t.equal(recs[0]!.writes.length, 3, 'the in-flight write, then one for the four marked during it')
  t.equal(recs[0]!.flushes.length, 3, 'one flush each')
  t.same(bm.dirtyNow().map((r) => r.offset / REGION), [3, 7, 10, 50], 'the dirty regions (10–14 merged)')
})

t.test('the newest valid copy wins; a damaged copy or slot is ignored', async (t) => {
  const [a, b] = await fresh(2)
  const bm = await IntentBitmap.open(places([a!, b!]), VOLUME, { regionSize: REGION, quietSettles: 1 })
  await bm.mark(0, 1) // sequence 2, slot 0
  const aOld = a!.clone()
  await bm.mark(5 * REGION, 1) // sequence 3, slot 1
  const two = [{ offset: 0, length: REGION }, { offset: 5 * REGION, length: REGION }]
  t.strictSame((await IntentBitmap.open(places([aOld, b!]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), two, 'the newer copy wins, second in the list')
  t.strictSame((await IntentBitmap.open(places([b!, aOld]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), two, 'or first')
  t.strictSame((await IntentBitmap.open(places([aOld]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), [{ offset: 0, length: REGION }])
  // One flipped bit in b's newest slot: its checksum fails, so b's older slot and a's newest compete.
  const bad = b!.clone()
  const byte = await bad.read(512 + 512 + 64, 1)
  await bad.write(512 + 512 + 64, Buffer.from([byte[0]! ^ 0x01]))
  t.strictSame((await IntentBitmap.open(places([bad]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), [{ offset: 0, length: REGION }], 'the older slot of the same copy')
  t.strictSame((await IntentBitmap.open(places([bad, a!]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), two, 'the other copy\'s newest')
})

t.test('garbage, truncated or foreign bitmaps are refused with exact errors', async (t) => {
  const garbage = new MemoryDevice(4096)
  await garbage.write(0, Buffer.alloc(4096, 0xa5))
  await t.rejects(IntentBitmap.open([{ dev: garbage, offset: 512, length: LENGTH }], VOLUME, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_BITMAP', message: /no bitmap magic/ })
  const [good] = await fresh(1)
  const magicOnly = good!.clone()
  await magicOnly.write(512 + 16, Buffer.alloc(8, 0xff))
  await magicOnly.write(512 + 512 + 16, Buffer.alloc(8, 0xff))
  await t.rejects(IntentBitmap.open(places([magicOnly]), VOLUME, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_BITMAP', message: /checksum/ })
  await t.rejects(IntentBitmap.open(places([good!]), VOLUME + 512, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_BITMAP', message: /describes a volume/ })
  await t.rejects(IntentBitmap.open(places([good!]), VOLUME, { regionSize: 2 * REGION }), { code: 'VOLUME_BITMAP' })
  await t.rejects(IntentBitmap.open([{ dev: good!, offset: 512, length: LENGTH - 512 }], VOLUME, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_LAYOUT' }, 'a copy too short for two slots')
  await t.rejects(IntentBitmap.open([{ dev: good!, offset: good!.size - 512, length: LENGTH }], VOLUME, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_LAYOUT' }, 'a copy past its device\'s end')
  await t.rejects(IntentBitmap.open([], VOLUME), { code: 'VOLUME_LAYOUT' })
  await t.rejects(IntentBitmap.open(places([good!]), 2 ** 50, { regionSize: 512 }), { code: 'VOLUME_LAYOUT', message: /regions exceed/ }, 'a bit count capped before allocation')
  await t.rejects(IntentBitmap.format(places([good!]), VOLUME, { regionSize: 0 }), { code: 'VOLUME_LAYOUT' })
})

t.test('every crash state of an update, torn slots included, opens to a state no older than the last resolved mark', async (t) => {
  // 8192 regions: 1 KiB of bits, so a slot spans three sectors and a write of it can tear.
  const region = 512
  const volume = 8192 * region
  const length = bitmapCopyLength(volume, { regionSize: region })
  t.equal(length, 2 * 1536)
  const at = (devs: readonly (MemoryDevice | RecordingDevice)[]): BitmapPlace[] => devs.map((dev) => ({ dev, offset: 0, length }))
  const mems = [new MemoryDevice(length), new MemoryDevice(length)]
  await IntentBitmap.format(at(mems), volume, { regionSize: region })
  await (await IntentBitmap.open(at(mems), volume, { regionSize: region, quietSettles: 1 })).mark(0, 1) // durable: region 0
  const bases = mems.map((m) => m.clone())
  const recs = bases.map((m) => new RecordingDevice(m.clone()))
  const bm = await IntentBitmap.open(at(recs), volume, { regionSize: region, quietSettles: 1 })
  await bm.settle() // written, not flushed: region 0 cleared
  await bm.mark(7000 * region, 1) // flushes the settle's slot, then writes and flushes region 7000's
  const flushes = recs[0]!.flushes.length
  t.equal(flushes, 2)
  let states = 0
  for (let k = 0; k <= flushes; k++) {
    const choices = recs.map((rec) => {
      const out: { apply: number[]; torn?: { write: number; sectors: number } }[] = [{ apply: [] }]
      rec.pending(k).forEach((_, w) => {
        out.push({ apply: [w] }, { apply: [], torn: { write: w, sectors: 1 } }, { apply: [], torn: { write: w, sectors: 2 } })
      })
      return out
    })
    for (const ca of choices[0]!) {
      for (const cb of choices[1]!) {
        const devs = [recs[0]!.crashState(bases[0]!, { flushes: k, ...ca }), recs[1]!.crashState(bases[1]!, { flushes: k, ...cb })]
        const dirty = (await IntentBitmap.open(at(devs), volume, { regionSize: region, quietSettles: 1 })).dirtyAtOpen().map((d) => d.offset / region)
        states++
        if (k === flushes) t.ok(dirty.includes(7000), `after the mark resolved, region 7000 is dirty (${JSON.stringify(ca)} ${JSON.stringify(cb)})`)
        t.ok(dirty.every((r) => r === 0 || r === 7000), `k ${k}: only regions the bitmap held (${dirty.join(',')})`)
      }
    }
  }
  t.ok(states >= 30, `${states} crash states opened, none refused`)
})

t.test('a copy whose disk fails is dropped; losing every copy fails the mark', async (t) => {
  const mems = await fresh(2)
  const faults = mems.map((m) => new FaultDevice(m))
  const bm = await IntentBitmap.open(places(faults), VOLUME, { regionSize: REGION, quietSettles: 1 })
  faults[0]!.inject({ kind: 'gone' })
  await bm.mark(0, 1)
  const unreadable = new FaultDevice(mems[0]!)
  unreadable.inject({ kind: 'eio', ops: ['read'] })
  t.strictSame((await IntentBitmap.open(places([unreadable, mems[1]!]), VOLUME, { regionSize: REGION, quietSettles: 1 })).dirtyAtOpen(), [{ offset: 0, length: REGION }], 'an unreadable copy is skipped')
  await t.rejects(IntentBitmap.open(places([unreadable]), VOLUME, { regionSize: REGION, quietSettles: 1 }), { code: 'VOLUME_BITMAP', message: /EIO/ })
  faults[1]!.inject({ kind: 'eio', ops: ['write'] })
  await t.rejects(bm.mark(2 * REGION, 1), { code: 'VOLUME_FAILED' })
  await t.rejects(bm.mark(3 * REGION, 1), { code: 'VOLUME_FAILED' }, 'and every mark after')
})
