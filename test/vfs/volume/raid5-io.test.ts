import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { VolumeError } from '../../../vfs/volume/layer.ts'
import { CountingDevice, filledRaid, int, put, randomBytes, randomRange, rng, seedFrom } from './raid5-helpers.ts'

t.test('layouts it refuses, and the size it serves', async (t) => {
  const two = [new MemoryDevice(4096), new MemoryDevice(4096)]
  t.throws(() => new Raid5Device(two, { unit: 512 }), { code: 'VOLUME_LAYOUT' })
  const three = [new MemoryDevice(4096), new MemoryDevice(8192), new MemoryDevice(5120)]
  t.throws(() => new Raid5Device(three, { unit: 1000 }), { code: 'VOLUME_LAYOUT' })
  t.throws(() => new Raid5Device(three, { unit: 8192 }), { code: 'VOLUME_LAYOUT' })
  const raid = new Raid5Device(three, { unit: 1536 })
  t.equal(raid.size, 2 * 2 * 1536, '(n - 1) × floor(4096 / 1536) × 1536')
  t.equal(raid.status().kind, 'raid5')
  await t.rejects(raid.read(raid.size - 1, 2), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(raid.write(-1, Buffer.alloc(1)), { code: 'BLOCKDEV_RANGE' })
  t.throws(() => { raid.fail(3); }, VolumeError)
  await t.rejects(raid.replace(0, new MemoryDevice(4096)), { code: 'VOLUME_MEMBER' }, 'only a failed member can be replaced')
})

for (const n of [3, 4, 5]) {
  t.test(`random I/O against a flat model, n = ${n}`, async (t) => {
    const seed = seedFrom('RAID5_IO_SEED')
    t.comment(`seed ${seed} (RAID5_IO_SEED to reproduce)`)
    const r = rng(seed)
    const unit = 512 * (1 + int(r, 3))
    const rig = await filledRaid(n, unit, 24, r)
    const row = (n - 1) * unit
    for (let op = 0; op < 600; op++) {
      if (int(r, 4) === 0) {
        // A batch of concurrent writes to disjoint ranges: the stripe locks keep parity right.
        const batch: Promise<void>[] = []
        let at = int(r, row)
        while (batch.length < 6 && at < rig.raid.size) {
          const length = Math.min(1 + int(r, unit + 100), rig.raid.size - at)
          batch.push(put(rig, at, randomBytes(r, length)))
          at += length + int(r, unit)
        }
        await Promise.all(batch)
      } else {
        const { offset, length } = randomRange(r, rig.raid.size, unit, row)
        await put(rig, offset, randomBytes(r, length))
      }
      if (op % 50 === 0) {
        const { offset, length } = randomRange(r, rig.raid.size, unit, row)
        t.strictSame(await rig.raid.read(offset, length), rig.model.subarray(offset, offset + length), `read ${length} at ${offset}`)
      }
    }
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), 'the whole volume equals the model')
    const scrub = await rig.raid.scrub()
    t.equal(scrub.mismatches, 0, 'every stripe\'s parity agrees')
    t.equal(rig.raid.status().degraded, false)
  })
}

t.test('a full-stripe write reads nothing; a partial one reads the fewer of RMW and reconstruct-write', async (t) => {
  const unit = 512
  for (const n of [3, 5]) {
    const counting = Array.from({ length: n }, () => new CountingDevice(new MemoryDevice(8 * unit)))
    const raid = new Raid5Device(counting, { unit })
    const row = (n - 1) * unit
    const reads = (): number => counting.reduce((s, d) => s + d.readBytes, 0)
    await raid.write(row, randomBytes(rng(1), 2 * row))
    t.equal(reads(), 0, `n ${n}: two full stripes read nothing`)
    await raid.write(0, Buffer.alloc(unit, 7))
    // One whole unit: RMW reads old data + old parity (2 units); reconstruct-write reads the other n - 2 data units.
    t.equal(reads(), Math.min(2, n - 2) * unit, `n ${n}: one whole unit reads ${Math.min(2, n - 2)} units`)
    const before = reads()
    await raid.write(row + 10, Buffer.alloc(20, 9))
    // 20 bytes: RMW reads 20 old bytes and 20 of old parity; reconstruct-write 20 of each other data unit.
    t.equal(reads() - before, Math.min(40, (n - 2) * 20), `n ${n}: 20 bytes read ${Math.min(40, (n - 2) * 20)} bytes`)
    const scrub = await raid.scrub()
    t.equal(scrub.mismatches, 0)
  }
})

t.test('two concurrent partial writes to one stripe never race on its parity', async (t) => {
  const unit = 512
  for (let round = 0; round < 20; round++) {
    const raid = new Raid5Device([0, 1, 2, 3].map(() => new MemoryDevice(4 * unit)), { unit })
    const a = Buffer.alloc(100, 0x11 + round)
    const b = Buffer.alloc(100, 0x77 + round)
    const c = Buffer.alloc(100, 0x33 + round)
    await Promise.all([raid.write(50, a), raid.write(unit + 50, b), raid.write(2 * unit + 200, c)])
    const scrub = await raid.scrub()
    t.equal(scrub.mismatches, 0, `round ${round}: parity of stripe 0 agrees`)
    raid.fail(1)
    t.strictSame(await raid.read(unit + 50, 100), b, 'the unit on the failed member reconstructs to the new bytes')
  }
})
