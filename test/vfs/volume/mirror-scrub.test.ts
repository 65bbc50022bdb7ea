import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { contents, CountingDevice, pattern, TestIntentLog } from './volume-helpers.ts'

const SIZE = 256 * 1024

t.test('scrub finds silent corruption no read sees, and repair rewrites it from the first leg', async (t) => {
  const events: VolumeEvent[] = []
  const legs = [new MemoryDevice(SIZE), new MemoryDevice(SIZE), new MemoryDevice(SIZE)]
  const m = new MirrorDevice(legs, { onEvent: (e) => events.push(e) })
  await m.write(0, pattern(SIZE, 11))
  // Damage leg 1 on the medium: 1000 bytes inverted at 5000, 3 bytes at 200000 (a second step).
  const bad = Buffer.from((await legs[1]!.read(5000, 1000)).map((b) => b ^ 0xff))
  await legs[1]!.write(5000, bad)
  await legs[2]!.write(70000, Buffer.from([(pattern(SIZE, 11)[70000] ?? 0) ^ 1]))
  await legs[1]!.write(200000, Buffer.from([0, 0, 0].map((_, i) => (pattern(SIZE, 11)[200000 + i] ?? 0) ^ 0x80)))
  const found = await m.scrub({ stepBytes: 65536 })
  t.strictSame(found, { bytes: SIZE, mismatchRanges: 3, mismatchBytes: 1004, repaired: 0 })
  t.strictSame(events.map((e) => [e.kind, e.member, e.offset, e.length]), [
    ['scrub-mismatch', 1, 5000, 1000],
    ['scrub-mismatch', 2, 70000, 1],
    ['scrub-mismatch', 1, 200000, 3],
  ])
  t.equal(m.status().degraded, false, 'a mismatch does not fail a leg')
  t.strictSame(await m.scrub({ stepBytes: 65536 }), found, 'without repair nothing changed')
  const fixed = await m.scrub({ repair: true })
  t.strictSame(fixed, { bytes: SIZE, mismatchRanges: 2, mismatchBytes: 1004, repaired: 2 }, 'one 1 MiB step: one range per differing leg')
  t.strictSame(await m.scrub(), { bytes: SIZE, mismatchRanges: 0, mismatchBytes: 0, repaired: 0 }, 'clean after repair')
  for (const l of legs) t.ok((await contents(l)).equals(pattern(SIZE, 11)), 'every leg holds the first leg\'s bytes')
})

t.test('scrub finds a read-time corruption too, and rewrites a range a leg cannot read', async (t) => {
  const events: VolumeEvent[] = []
  const legs = [new FaultDevice(new MemoryDevice(SIZE)), new FaultDevice(new MemoryDevice(SIZE))]
  const m = new MirrorDevice(legs, { onEvent: (e) => events.push(e) })
  await m.write(0, pattern(SIZE, 12))
  legs[1]!.inject({ kind: 'corrupt', offset: 300, length: 20 })
  t.match(await m.scrub(), { mismatchRanges: 1, mismatchBytes: 20 })
  legs[1]!.heal()
  legs[1]!.inject({ kind: 'eio', ops: ['read'], offset: 100000, length: 1 })
  events.length = 0
  t.match(await m.scrub({ stepBytes: 65536 }), { mismatchRanges: 0 })
  t.strictSame(events.map((e) => [e.kind, e.member, e.offset, e.length]), [['read-repaired', 1, 65536, 65536]])
  legs[1]!.inject({ kind: 'eio', ops: ['write'] })
  await m.scrub({ stepBytes: 65536 })
  t.equal(m.status().members[1]?.state, 'failed', 'a leg that can neither read nor take the rewrite is dropped')
})

t.test('resync copies only the dirty regions, from the first ok leg', async (t) => {
  const events: VolumeEvent[] = []
  const regions = [
    { offset: 8192, length: 4096 },
    { offset: 65536, length: 8192 },
    { offset: SIZE - 4096, length: 1 << 20 }, // a log read from disk may overrun: clipped
  ]
  const intent = new TestIntentLog(4096, regions)
  const legs = [new CountingDevice(new MemoryDevice(SIZE)), new CountingDevice(new MemoryDevice(SIZE)), new CountingDevice(new MemoryDevice(SIZE))]
  // After a crash the legs disagree: leg 0 has new bytes everywhere, legs 1 and 2 old ones.
  await legs[0]!.inner.write(0, pattern(SIZE, 13))
  const m = new MirrorDevice(legs, { intent, onEvent: (e) => events.push(e) })
  const copied = await m.resync({ stepBytes: 4096 })
  t.equal(copied, 4096 + 8192 + 4096)
  for (const i of [1, 2]) {
    t.equal(legs[i]!.bytesWritten, copied, `leg ${i}: written only the dirty bytes`)
    t.strictSame(legs[i]!.writeLog, [8192, 65536, 69632, SIZE - 4096].map((offset) => ({ offset, length: 4096 })))
    t.same(await legs[i]!.inner.read(65536, 8192), pattern(SIZE, 13).subarray(65536, 73728), 'with leg 0\'s bytes')
    t.same(await legs[i]!.inner.read(4096, 4096), Buffer.alloc(4096), 'clean regions untouched')
  }
  t.equal(legs[0]!.writes, 0, 'the source is only read')
  t.equal(intent.settles, 1, 'settled by the flush after the copy')
  t.strictSame(events.map((e) => e.kind), ['resync-started', 'resync-done'])
})

t.test('resync without a log has nothing to do; after a failed source it reads the next', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  t.equal(await m.resync(), 0)
  const gone = new FaultDevice(new MemoryDevice(SIZE))
  const target = new CountingDevice(new MemoryDevice(SIZE))
  const legs = [gone, new MemoryDevice(SIZE), target]
  await legs[1]!.write(0, Buffer.alloc(4096, 5))
  gone.inject({ kind: 'gone' })
  const m2 = new MirrorDevice(legs, { intent: new TestIntentLog(4096, [{ offset: 0, length: 4096 }]) })
  t.equal(await m2.resync(), 4096)
  t.equal(m2.status().members[0]?.state, 'failed', 'the gone leg could not take the repair')
  t.same(await target.inner.read(0, 4096), Buffer.alloc(4096, 5), 'leg 2 got leg 1\'s copy')
})

t.test('closing the mirror stops a scrub or a resync at its next step', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)], { intent: new TestIntentLog(4096, [{ offset: 0, length: SIZE }]) })
  const both = Promise.all([
    t.rejects(m.scrub({ stepBytes: 4096, rateBytesPerSec: 256 * 1024 }), { code: 'BLOCKDEV_CLOSED' }),
    t.rejects(m.resync({ stepBytes: 4096, rateBytesPerSec: 256 * 1024 }), { code: 'BLOCKDEV_CLOSED' }),
  ])
  await new Promise((resolve) => setTimeout(resolve, 20))
  await m.close()
  await both
  await t.rejects(m.scrub(), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(m.resync(), { code: 'BLOCKDEV_CLOSED' })
  t.equal(m.status().failed, false, 'no leg was failed by the shutdown')
})
