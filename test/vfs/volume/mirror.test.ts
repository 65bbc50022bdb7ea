import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { layerContract } from './layer-contract.ts'
import { below, contents, CountingDevice, pattern, randomBytes, randomRange, rng, seedOf, TestIntentLog } from './volume-helpers.ts'

const SIZE = 64 * 1024

function faulty(n = 2): { legs: FaultDevice[]; events: VolumeEvent[]; mirror: MirrorDevice } {
  const legs = Array.from({ length: n }, () => new FaultDevice(new MemoryDevice(SIZE)))
  const events: VolumeEvent[] = []
  return { legs, events, mirror: new MirrorDevice(legs, { onEvent: (e) => events.push(e) }) }
}

t.test('layout: size is the smallest leg in whole sectors of the largest', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(8192 + 512), new MemoryDevice(16384, { sectorSize: 4096 })])
  t.equal(m.sectorSize, 4096)
  t.equal(m.size, 8192)
  t.equal(m.kind, 'mirror')
  t.throws(() => new MirrorDevice([new MemoryDevice(8192)]), { code: 'VOLUME_LAYOUT' })
  t.throws(() => new MirrorDevice([new MemoryDevice(2048), new MemoryDevice(8192, { sectorSize: 4096 })]), { code: 'VOLUME_LAYOUT' }, 'no whole sector')
  t.throws(() => {
    m.fail(2)
  }, { code: 'VOLUME_MEMBER' })
  t.throws(() => {
    m.fail(-1)
  }, { code: 'VOLUME_MEMBER' })
})

t.test('mirror: block-device contract', (t) => layerContract(t, { count: 2, memberSize: 8192, make: (m) => new MirrorDevice(m) }))

t.test('writes reach every leg; reads alternate between them', async (t) => {
  const legs = [new CountingDevice(new MemoryDevice(SIZE)), new CountingDevice(new MemoryDevice(SIZE)), new CountingDevice(new MemoryDevice(SIZE))]
  const m = new MirrorDevice(legs)
  await m.write(1000, pattern(5000, 1))
  for (const l of legs) t.same(await l.inner.read(1000, 5000), pattern(5000, 1))
  for (let i = 0; i < 30; i++) t.same(await m.read(1000, 5000), pattern(5000, 1))
  t.strictSame(legs.map((l) => l.reads), [10, 10, 10], 'round-robin')
  t.same(m.status(), { kind: 'mirror', size: SIZE, degraded: false, failed: false, members: [0, 1, 2].map((index) => ({ index, state: 'ok' })) })
})

t.test('a leg whose write fails is dropped; the write succeeds and the data is intact', async (t) => {
  const { legs, events, mirror } = faulty()
  await mirror.write(0, pattern(8192, 1))
  legs[1]!.inject({ kind: 'eio', ops: ['write'], offset: 4096, length: 1 })
  await mirror.write(4000, pattern(200, 2))
  const st = mirror.status()
  t.equal(st.degraded, true)
  t.equal(st.failed, false)
  t.match(st.members[1], { index: 1, state: 'failed', reason: /^EIO: write of 200 bytes at 4000/ })
  t.match(events, [{ kind: 'member-failed', layer: 'mirror', member: 1, message: /leg 1 failed: EIO/ }])
  const want = pattern(8192, 1)
  pattern(200, 2).copy(want, 4000)
  for (let i = 0; i < 4; i++) t.same(await mirror.read(0, 8192), want, 'every read from the remaining leg')
  legs[1]!.heal()
  await mirror.write(0, Buffer.alloc(10, 9))
  t.same(await legs[1]!.read(0, 10), pattern(10, 1), 'a failed leg gets no more writes')
  await mirror.flush()
  t.equal(events.length, 1)
})

t.test('a leg whose flush fails is dropped; the flush succeeds', async (t) => {
  const { legs, mirror } = faulty()
  legs[0]!.inject({ kind: 'eio', ops: ['flush'] })
  await mirror.write(0, Buffer.alloc(512, 1))
  await mirror.flush()
  t.equal(mirror.status().members[0]?.state, 'failed')
  t.same(await mirror.read(0, 512), Buffer.alloc(512, 1))
})

t.test('a read error is served from the other leg and repaired', async (t) => {
  const { legs, events, mirror } = faulty()
  await mirror.write(0, pattern(SIZE, 3))
  legs[0]!.inject({ kind: 'eio', ops: ['read'], offset: 8192, length: 512 })
  for (let i = 0; i < 2; i++) t.same(await mirror.read(8000, 1000), pattern(SIZE, 3).subarray(8000, 9000), `read ${i} served`)
  t.strictSame(events.map((e) => [e.kind, e.member, e.offset, e.length]), [['read-repaired', 0, 8000, 1000]], 'one repair: the read that hit leg 0')
  t.equal(mirror.status().degraded, false, 'a repaired leg stays ok')
  // The rewrite reached leg 0 with the good bytes: make its copy distinguishable first.
  await legs[0]!.inner.write(8000, Buffer.alloc(1000))
  legs[0]!.heal()
  legs[0]!.inject({ kind: 'eio', ops: ['read'], offset: 8192, length: 512 })
  await mirror.read(8000, 1000)
  await mirror.read(8000, 1000)
  t.same(await legs[0]!.inner.read(8000, 1000), pattern(SIZE, 3).subarray(8000, 9000), 'leg 0 holds the good bytes again')
})

t.test('a repair whose re-read of the good leg fails leaves the range for a later read', async (t) => {
  const { legs, events, mirror } = faulty()
  await mirror.write(0, pattern(4096, 4))
  legs[0]!.inject({ kind: 'eio', ops: ['read'], offset: 0, length: 1 })
  legs[1]!.armAfter(2, { kind: 'eio', ops: ['read'] })
  t.same(await mirror.read(0, 4096), pattern(4096, 4), 'the client read is served by leg 1')
  t.strictSame(events, [], 'no repair, and no leg failed: the re-read under the lock found no good copy')
  t.equal(mirror.status().degraded, false)
})

t.test('a read error whose rewrite fails too drops the leg', async (t) => {
  const { legs, events, mirror } = faulty()
  await mirror.write(0, pattern(4096, 4))
  legs[1]!.inject({ kind: 'eio', ops: ['read', 'write'], offset: 0, length: 4096 })
  t.same(await mirror.read(0, 4096), pattern(4096, 4))
  t.same(await mirror.read(0, 4096), pattern(4096, 4))
  t.equal(mirror.status().members[1]?.state, 'failed')
  t.strictSame(events.map((e) => e.kind), ['member-failed'])
})

t.test('a leg that is gone on a read is dropped once its rewrite fails', async (t) => {
  const { legs, mirror } = faulty()
  await mirror.write(0, pattern(4096, 4))
  legs[0]!.inject({ kind: 'gone' })
  for (let i = 0; i < 3; i++) t.same(await mirror.read(0, 4096), pattern(4096, 4))
  t.match(mirror.status().members[0], { state: 'failed', reason: /^ENXIO/ })
})

t.test('corruption is not detectable by a mirror read', async (t) => {
  const { legs, mirror } = faulty()
  await mirror.write(0, pattern(4096, 5))
  legs[1]!.inject({ kind: 'corrupt', offset: 100, length: 10 })
  const a = await mirror.read(0, 4096)
  const b = await mirror.read(0, 4096)
  const bad = a.equals(pattern(4096, 5)) ? b : a
  t.notSame(a, b, 'the two legs answer differently and the mirror cannot tell')
  t.equal(bad[100], (pattern(4096, 5)[100] ?? 0) ^ 0xff, 'one read returned the inverted bytes, without error')
  t.equal(mirror.status().degraded, false)
})

t.test('every leg failed: writes and flushes refuse with VOLUME_FAILED', async (t) => {
  const { legs, events, mirror } = faulty()
  await mirror.write(0, Buffer.alloc(512, 1))
  legs[0]!.inject({ kind: 'eio', ops: ['write'] })
  legs[1]!.inject({ kind: 'eio', ops: ['write'] })
  await t.rejects(mirror.write(0, Buffer.alloc(512, 2)), { code: 'VOLUME_FAILED' })
  t.equal(mirror.status().failed, true)
  t.strictSame(events.map((e) => e.kind), ['member-failed', 'member-failed', 'volume-failed'])
  await t.rejects(mirror.write(0, Buffer.alloc(512, 2)), { code: 'VOLUME_FAILED' }, 'and keep refusing')
  await t.rejects(mirror.flush(), { code: 'VOLUME_FAILED' })
  await t.rejects(mirror.read(0, 512), { code: 'VOLUME_FAILED' }, 'no leg left to read')
  await t.rejects(mirror.scrub(), { code: 'VOLUME_FAILED' })
})

t.test('fail() drops a leg by hand, and the last one fails the volume', async (t) => {
  const { events, mirror } = faulty()
  mirror.fail(0)
  t.match(mirror.status().members[0], { state: 'failed', reason: 'failed by hand' })
  t.equal(mirror.status().failed, false)
  mirror.fail(0)
  t.equal(events.length, 1, 'failing a failed leg again says nothing')
  await mirror.write(0, Buffer.alloc(1, 1))
  mirror.fail(1)
  t.equal(mirror.status().failed, true)
  t.equal(events.at(-1)?.kind, 'volume-failed')
})

t.test('the intent is marked before any leg is written and settled after a flush', async (t) => {
  const legs = [new CountingDevice(new MemoryDevice(SIZE)), new CountingDevice(new MemoryDevice(SIZE))]
  const seen: number[] = []
  class Watching extends TestIntentLog {
    override async mark(offset: number, length: number, generation: number): Promise<void> {
      seen.push(legs[0]!.writes + legs[1]!.writes)
      return super.mark(offset, length, generation)
    }
  }
  const intent = new Watching(4096)
  const m = new MirrorDevice(legs, { intent })
  await m.write(5000, Buffer.alloc(5000, 1))
  t.strictSame(seen, [0], 'mark came before the first leg write')
  t.strictSame([...intent.dirty].sort(), [1, 2], 'regions 1 and 2 dirty')
  await m.flush()
  t.equal(intent.settles, 1)
  t.equal(intent.dirty.size, 0)
  await m.write(100, Buffer.alloc(0))
  t.equal(intent.marks, 1, 'an empty write marks nothing')
  await m.close()
  t.equal(intent.closed, true, 'the mirror owns its log')
})

t.test('a leg gone at a random moment loses no acknowledged write', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const legs = [new FaultDevice(new MemoryDevice(SIZE)), new FaultDevice(new MemoryDevice(SIZE))]
  const victim = below(r, 2)
  legs[victim]!.armAfter(1 + below(r, 300), { kind: 'gone' })
  const mirror = new MirrorDevice(legs)
  const model = new MemoryDevice(SIZE)
  let checks = 0
  for (let op = 0; op < 400; op++) {
    const { offset, length } = randomRange(r, SIZE, 6000)
    const roll = r()
    if (roll < 0.5) {
      const data = randomBytes(r, length)
      await mirror.write(offset, data)
      await model.write(offset, data)
    } else if (roll < 0.9) {
      t.same(await mirror.read(offset, length), await model.read(offset, length))
    } else {
      await mirror.flush()
      if (!(await contents(mirror)).equals(await contents(model))) t.fail(`volume differs from the model after flush at op ${op}`)
      checks++
    }
  }
  await mirror.flush()
  t.ok((await contents(mirror)).equals(await contents(model)), 'volume equals the model')
  t.ok((await contents(legs[1 - victim]!)).equals(await contents(model)), 'the surviving leg equals the model')
  t.match(mirror.status().members[victim], { state: 'failed', reason: /ENXIO/ })
  t.ok(checks > 10, `${checks} flush checks`)
})

t.test('a write or flush overlapping close rejects with BLOCKDEV_CLOSED, failing no leg', async (t) => {
  const events: VolumeEvent[] = []
  class Slow extends MemoryDevice {
    override async write(offset: number, data: Uint8Array): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, 10))
      return super.write(offset, data)
    }
    override async flush(): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, 10))
      return super.flush()
    }
  }
  const m = new MirrorDevice([new Slow(SIZE), new Slow(SIZE)], { onEvent: (e) => events.push(e) })
  const both = Promise.all([t.rejects(m.write(0, Buffer.alloc(10)), { code: 'BLOCKDEV_CLOSED' }), t.rejects(m.flush(), { code: 'BLOCKDEV_CLOSED' })])
  await m.close()
  await both
  t.strictSame(events, [])
})
