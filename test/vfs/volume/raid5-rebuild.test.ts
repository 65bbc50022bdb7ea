import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { parityMember } from '../../../vfs/volume/parity.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { filledRaid, int, put, randomBytes, randomRange, rng, seedFrom } from './raid5-helpers.ts'

t.test('replace under concurrent client writes ends consistent and equal to the model', async (t) => {
  const seed = seedFrom('RAID5_REBUILD_SEED')
  t.comment(`seed ${seed} (RAID5_REBUILD_SEED to reproduce)`)
  const r = rng(seed)
  for (const n of [3, 4, 5]) {
    const unit = 512
    const stripes = 64
    const rig = await filledRaid(n, unit, stripes, r)
    const row = (n - 1) * unit
    const lost = int(r, n)
    rig.raid.fail(lost)
    const progress = { running: true }
    let during = 0
    let sawPartial = false
    const rebuild = rig.raid
      .replace(lost, new MemoryDevice(stripes * unit), { stepBytes: 2 * unit })
      .finally(() => {
        progress.running = false
      })
    // Client writes and reads keep coming while the rebuild walks the stripes.
    while (progress.running) {
      const { offset, length } = randomRange(r, rig.raid.size, unit, row)
      await put(rig, offset, randomBytes(r, length))
      const rebuilt = rig.raid.status().members[lost]?.rebuilt
      if (rebuilt !== undefined && rebuilt > 0 && rebuilt < stripes * unit) sawPartial = true
      const check = randomRange(r, rig.raid.size, unit, row)
      t.ok((await rig.raid.read(check.offset, check.length)).equals(rig.model.subarray(check.offset, check.offset + check.length)), 'a read during the rebuild')
      during++
      // MemoryDevice answers in microtasks; a real disk's answers come as events, between which the rebuild runs.
      await nextTurn()
    }
    await rebuild
    t.ok(during > 5, `n ${n}: ${during} writes ran during the rebuild`)
    t.ok(sawPartial, 'status showed a partial rebuild')
    t.match(rig.raid.status(), { degraded: false, failed: false })
    t.equal((await rig.raid.scrub()).mismatches, 0, `n ${n}: scrub finds no mismatch after the rebuild`)
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), `n ${n}: the volume equals the model`)
    rig.raid.fail((lost + 1) % n)
    t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), 'the rebuilt member now serves reconstructions of another')
  }
})

t.test('a rate limit paces the rebuild', async (t) => {
  const unit = 512
  const rig = await filledRaid(3, unit, 16, rng(3))
  rig.raid.fail(2)
  const began = Date.now()
  await rig.raid.replace(2, new MemoryDevice(16 * unit), { stepBytes: 4 * unit, rateBytesPerSec: 16 * unit * 10 })
  t.ok(Date.now() - began >= 90, `16 units at 10 volumes a second take about 100 ms (${Date.now() - began} ms)`)
  t.equal((await rig.raid.scrub()).mismatches, 0)
})

t.test('a replacement that fails, or loses its source, stops the rebuild', async (t) => {
  const unit = 512
  const rig = await filledRaid(3, unit, 8, rng(5), (d) => new FaultDevice(d))
  rig.raid.fail(0)
  const bad = new FaultDevice(new MemoryDevice(8 * unit))
  bad.armAfter(3, { kind: 'eio', ops: ['write'] })
  // One stripe per step (a step is one write per member now), so the fault lands mid-rebuild.
  await t.rejects(rig.raid.replace(0, bad, { stepBytes: unit }), { code: 'EIO' })
  t.match(rig.raid.status().members[0], { state: 'failed' })
  t.equal(rig.raid.status().failed, false, 'the volume still serves, degraded')
  await t.rejects(rig.raid.replace(0, new MemoryDevice(4 * unit)), { code: 'VOLUME_LAYOUT' }, 'too small')
  ;(rig.wrapped[1] as FaultDevice).armAfter(4, { kind: 'gone' })
  await t.rejects(rig.raid.replace(0, new MemoryDevice(8 * unit), { stepBytes: unit }), { code: 'VOLUME_FAILED' })
  t.equal(rig.raid.status().failed, true)
})

t.test('scrub finds a parity unit overwritten with garbage and repairs it', async (t) => {
  const unit = 512
  const n = 4
  const rig = await filledRaid(n, unit, 8, rng(9))
  t.strictSame(await rig.raid.scrub(), { stripes: 8, mismatches: 0, repaired: 0 })
  const stripe = 5
  const p = parityMember(stripe, n)
  await rig.devs[p]!.write(stripe * unit + 100, Buffer.alloc(37, 0xee))
  t.strictSame(await rig.raid.scrub(), { stripes: 8, mismatches: 1, repaired: 0 })
  t.match(rig.events.at(-1), { kind: 'scrub-mismatch', member: p, offset: stripe * unit, length: unit })
  t.strictSame(await rig.raid.scrub({ repair: true }), { stripes: 8, mismatches: 1, repaired: 1 })
  t.strictSame(await rig.raid.scrub(), { stripes: 8, mismatches: 0, repaired: 0 })
  rig.raid.fail((p + 1) % n)
  t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model), 'the repaired parity reconstructs the right data')
  await t.rejects(rig.raid.scrub(), { code: 'VOLUME_MEMBER' }, 'a degraded volume has no parity to check')
})

t.test('failing the member being rebuilt stops its rebuild with VOLUME_MEMBER; the volume stays degraded', async (t) => {
  const unit = 512
  const rig = await filledRaid(4, unit, 32, rng(21))
  rig.raid.fail(3)
  const rebuild = rig.raid.replace(3, new MemoryDevice(32 * unit), { stepBytes: unit })
  await nextTurn()
  t.equal(rig.raid.status().members[3]?.state, 'rebuilding')
  await t.rejects(rig.raid.replace(3, new MemoryDevice(32 * unit)), { code: 'VOLUME_MEMBER' }, 'one rebuild at a time')
  rig.raid.fail(3)
  await t.rejects(rebuild, { code: 'VOLUME_MEMBER' })
  t.match(rig.raid.status(), { degraded: true, failed: false })
  t.ok((await rig.raid.read(0, rig.raid.size)).equals(rig.model))
})

t.test('a read-only volume reads and scrubs but refuses repair, writes and replacement', async (t) => {
  const unit = 512
  const rig = await filledRaid(3, unit, 4, rng(23))
  const ro = new Raid5Device(rig.devs.map((d) => d.clone({ readOnly: true })), { unit })
  t.equal(ro.readOnly, true)
  t.ok((await ro.read(0, ro.size)).equals(rig.model))
  t.equal((await ro.scrub()).mismatches, 0)
  await t.rejects(ro.scrub({ repair: true }), { code: 'BLOCKDEV_READONLY' })
  await t.rejects(ro.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_READONLY' })
  ro.fail(0)
  await t.rejects(ro.replace(0, new MemoryDevice(4 * unit, { readOnly: true })), { code: 'VOLUME_MEMBER' })
  t.equal(ro.status().failed, false)
})

t.test('closing the volume stops a rebuild sleeping for its rate at once', async (t) => {
  const r = rng(7)
  const unit = 512
  const rig = await filledRaid(3, unit, 64, r)
  rig.raid.fail(1)
  // 1 byte/s: the first step's sleep would last for hours.
  const rebuild = rig.raid.replace(1, new MemoryDevice(64 * unit), { stepBytes: unit, rateBytesPerSec: 1 })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const started = performance.now()
  await rig.raid.close()
  await t.rejects(rebuild, { code: 'BLOCKDEV_CLOSED' }, 'the rebuild ends with the close')
  t.ok(performance.now() - started < 2000, 'within moments, not at the rate')
  await t.rejects(rig.raid.replace(1, new MemoryDevice(64 * unit)), { code: 'BLOCKDEV_CLOSED' }, 'and nothing starts on a closed volume')
})

t.test('a step larger than one allocation may be is refused before anything is read', async (t) => {
  const rig = await filledRaid(3, 512, 16, rng(8))
  rig.raid.fail(0)
  await t.rejects(rig.raid.replace(0, new MemoryDevice(16 * 512), { stepBytes: 2 ** 40 }), { code: 'VOLUME_LAYOUT' })
})
