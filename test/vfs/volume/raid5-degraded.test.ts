import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { locate } from '../../../vfs/volume/parity.ts'
import { filledRaid, int, put, randomBytes, randomRange, rng, seedFrom } from './raid5-helpers.ts'

for (const n of [3, 4]) {
  t.test(`n = ${n}: each member in turn fails; reads reconstruct, writes go on, a replacement rebuilds`, async (t) => {
    const seed = seedFrom('RAID5_DEGRADED_SEED')
    t.comment(`seed ${seed} (RAID5_DEGRADED_SEED to reproduce)`)
    const r = rng(seed)
    const unit = 512
    for (let lost = 0; lost < n; lost++) {
      const rig = await filledRaid(n, unit, 12, r)
      const row = (n - 1) * unit
      rig.raid.fail(lost)
      t.match(rig.events.at(-1), { kind: 'member-failed', layer: 'raid5', member: lost })
      t.match(rig.raid.status(), { degraded: true, failed: false })
      t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), `member ${lost} failed: every byte reads back`)
      for (let op = 0; op < 80; op++) {
        const { offset, length } = randomRange(r, rig.raid.size, unit, row)
        await put(rig, offset, randomBytes(r, length))
      }
      await rig.raid.flush()
      t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), `member ${lost} failed: writes made while degraded read back`)
      const fresh = new MemoryDevice(12 * unit)
      const progress: number[] = []
      await rig.raid.replace(lost, fresh, { stepBytes: 4 * unit, onProgress: (done) => progress.push(done) })
      t.strictSame(progress, [4 * unit, 8 * unit, 12 * unit], 'progress after every step')
      t.strictSame(rig.events.slice(-5).map((e) => e.kind), ['rebuild-started', 'rebuild-progress', 'rebuild-progress', 'rebuild-progress', 'rebuild-done'])
      t.equal(rig.raid.status().degraded, false)
      t.equal((await rig.raid.scrub()).mismatches, 0, 'the rebuilt member agrees with every stripe')
      t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model))
    }
  })
}

t.test('a read error marks the member failed and the read still returns the right bytes', async (t) => {
  const r = rng(7)
  const rig = await filledRaid(3, 512, 6, r, (d) => new FaultDevice(d))
  const faulty = rig.wrapped[1] as FaultDevice
  faulty.inject({ kind: 'eio', ops: ['read'] })
  const at = 512 // unit 1: stripe 0, member 1
  t.equal(locate(at, 3, 512).member, 1)
  t.strictSame(await rig.raid.read(at, 700), rig.model.subarray(at, at + 700))
  t.match(rig.raid.status().members[1], { state: 'failed', reason: /EIO/ })
  t.match(rig.events, [{ kind: 'member-failed', member: 1 }])
  const flaky = await filledRaid(3, 512, 6, r, (d) => new FaultDevice(d))
  ;(flaky.wrapped[2] as FaultDevice).inject({ kind: 'eio', ops: ['flush'] })
  await flaky.raid.flush()
  t.match(flaky.raid.status().members[2], { state: 'failed' }, 'a flush error fails the member too')
  await put(flaky, 100, Buffer.alloc(2000, 0x5a))
  t.ok((await flaky.raid.read(0, flaky.raid.size)).equals(flaky.model))
})

t.test('a second failure: writes refuse VOLUME_FAILED, reads of intact units still work, none returns wrong data', async (t) => {
  const unit = 512
  const rig = await filledRaid(3, unit, 6, rng(11), (d) => new FaultDevice(d))
  rig.raid.fail(0)
  ;(rig.wrapped[1] as FaultDevice).inject({ kind: 'gone' })
  // Unit 1 (stripe 0, data on member 1, parity on member 2): the write fails on member 1.
  await t.rejects(rig.raid.write(unit + 10, Buffer.alloc(50, 1)), { code: 'VOLUME_FAILED' })
  t.match(rig.raid.status(), { failed: true, degraded: true })
  t.match(rig.events.map((e) => e.kind), ['member-failed', 'member-failed', 'volume-failed'])
  await t.rejects(rig.raid.write(0, Buffer.alloc(1)), { code: 'VOLUME_FAILED' })
  await t.rejects(rig.raid.flush(), { code: 'VOLUME_FAILED' })
  await t.rejects(rig.raid.replace(0, new MemoryDevice(6 * unit)), { code: 'VOLUME_FAILED' })
  let served = 0
  for (let u = 0; u < rig.raid.size / unit; u++) {
    const place = locate(u * unit, 3, unit)
    if (place.member === 2) {
      t.strictSame(await rig.raid.read(u * unit, unit), rig.model.subarray(u * unit, (u + 1) * unit), `unit ${u} on the live member`)
      served++
    } else {
      await t.rejects(rig.raid.read(u * unit, unit), { code: 'VOLUME_FAILED' }, `unit ${u} has no source left`)
    }
  }
  t.equal(served, 4)
})

t.test('a member gone at a seeded moment of a workload loses no acknowledged write', async (t) => {
  const seed = seedFrom('RAID5_GONE_SEED')
  t.comment(`seed ${seed} (RAID5_GONE_SEED to reproduce)`)
  const r = rng(seed)
  let hit = 0
  for (let round = 0; round < 6; round++) {
    const n = 3 + int(r, 3)
    const unit = 512
    const rig = await filledRaid(n, unit, 10, r, (d) => new FaultDevice(d))
    const victim = int(r, n)
    const dev = rig.wrapped[victim] as FaultDevice
    dev.armAfter(1 + int(r, 120), { kind: 'gone' })
    const row = (n - 1) * unit
    for (let op = 0; op < 60; op++) {
      const { offset, length } = randomRange(r, rig.raid.size, unit, row)
      await put(rig, offset, randomBytes(r, length))
      if (op % 10 === 9) await rig.raid.flush()
    }
    await rig.raid.flush()
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), `round ${round}: n ${n}, member ${victim} gone: every acknowledged write reads back`)
    if (!dev.gone) continue
    hit++
    t.match(rig.raid.status().members[victim], { state: 'failed', reason: /ENXIO/ })
    await rig.raid.replace(victim, new MemoryDevice(10 * unit))
    t.equal((await rig.raid.scrub()).mismatches, 0, 'stripes hit mid-update are consistent: the rebuilt member agrees')
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model))
  }
  t.ok(hit > 0, `${hit} of 6 rounds lost their member mid-workload`)
})

t.test('a read error while planning a partial write: the member fails, the write is planned again and lands', async (t) => {
  const unit = 512
  for (const faulty of [0, 1, 2]) {
    const rig = await filledRaid(3, unit, 4, rng(13 + faulty), (d) => new FaultDevice(d))
    ;(rig.wrapped[faulty] as FaultDevice).inject({ kind: 'eio', ops: ['read'] })
    // The last 112 bytes of stripe 0's unit 0 (member 0) and the first 10 of unit 1 (member 1):
    // read-modify-write reads from all three members (parity on 2), so each in turn fails mid-plan.
    await put(rig, 400, Buffer.alloc(122, 0x42 + faulty))
    t.match(rig.raid.status().members[faulty], { state: 'failed', reason: /EIO/ }, `member ${faulty}'s read error failed it`)
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), `member ${faulty} lost mid-write: the volume still equals the model`)
  }
  const rig = await filledRaid(3, unit, 4, rng(17), (d) => new FaultDevice(d))
  ;(rig.wrapped[2] as FaultDevice).inject({ kind: 'eio', ops: ['write'] })
  t.equal(await rig.raid.resync(), 0, 'no intent log: nothing dirty')
  await rig.raid.scrub({ repair: false })
  await rig.raid.close()
  await t.rejects(rig.raid.read(0, 1), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(rig.raid.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(rig.raid.flush(), { code: 'BLOCKDEV_CLOSED' })
  await rig.raid.close()
})

t.test('a parity write that fails during repair leaves the volume degraded, not failed', async (t) => {
  const unit = 512
  const rig = await filledRaid(3, unit, 4, rng(19), (d) => new FaultDevice(d))
  await rig.devs[2]!.write(0, Buffer.alloc(8, 0xee)) // stripe 0's parity, behind the volume's back
  ;(rig.wrapped[2] as FaultDevice).inject({ kind: 'eio', ops: ['write'] })
  const result = await rig.raid.scrub({ repair: true })
  t.strictSame(result, { stripes: 4, mismatches: 1, repaired: 1 })
  t.match(rig.raid.status(), { degraded: true, failed: false })
  t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model))
})
