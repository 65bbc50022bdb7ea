import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { contents, CountingDevice, LaggyReadDevice, pattern, randomBytes, randomRange, rng, seedOf } from './volume-helpers.ts'

const SIZE = 256 * 1024

t.test('replace rebuilds a failed leg: events, progress, flush, then ok', async (t) => {
  const events: VolumeEvent[] = []
  const old = new FaultDevice(new MemoryDevice(SIZE))
  const m = new MirrorDevice([new MemoryDevice(SIZE), old], { onEvent: (e) => events.push(e) })
  await m.write(0, pattern(SIZE, 7))
  old.inject({ kind: 'gone' })
  await m.write(0, Buffer.alloc(10, 1))
  t.equal(m.status().members[1]?.state, 'failed')
  const fresh = new CountingDevice(new MemoryDevice(SIZE + 4096))
  const progress: [number, number][] = []
  await m.replace(1, fresh, { stepBytes: 64 * 1024, onProgress: (d, total) => progress.push([d, total]) })
  t.strictSame(progress, [1, 2, 3, 4].map((k) => [k * 65536, SIZE]))
  t.strictSame(events.slice(1).map((e) => [e.kind, e.member, e.offset, e.length]), [
    ['rebuild-started', 1, 0, SIZE],
    ...[0, 1, 2, 3].map((k) => ['rebuild-progress', 1, k * 65536, 65536]),
    ['rebuild-done', 1, 0, SIZE],
  ])
  t.equal(fresh.flushes, 1, 'the new leg is flushed at the end')
  t.same(m.status(), { kind: 'mirror', size: SIZE, degraded: false, failed: false, members: [{ index: 0, state: 'ok' }, { index: 1, state: 'ok' }] })
  t.strictSame(m.members[1], fresh)
  const want = pattern(SIZE, 7)
  want.fill(1, 0, 10)
  t.ok((await fresh.read(0, SIZE)).equals(want), 'the new leg holds the volume')
  await t.rejects(old.inner.read(0, 1), { code: 'BLOCKDEV_CLOSED' }, 'the dropped leg was closed')
})

t.test('replace refuses what it cannot do', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  await t.rejects(m.replace(2, new MemoryDevice(SIZE)), { code: 'VOLUME_MEMBER' })
  await t.rejects(m.replace(0, new MemoryDevice(SIZE - 512)), { code: 'VOLUME_LAYOUT' })
  await t.rejects(m.replace(0, new MemoryDevice(SIZE, { sectorSize: 4096 })), { code: 'VOLUME_LAYOUT' }, 'a larger sector than the mirror')
  await t.rejects(m.replace(0, new MemoryDevice(SIZE, { readOnly: true })), { code: 'VOLUME_MEMBER' })
  await t.rejects(m.replace(0, m.members[1]!), { code: 'VOLUME_MEMBER' }, 'a leg it already has')
  await t.rejects(m.replace(0, new MemoryDevice(SIZE), { stepBytes: 0 }), { code: 'VOLUME_LAYOUT' }, 'a zero step')
  m.fail(0)
  await t.rejects(m.replace(1, new MemoryDevice(SIZE)), { code: 'VOLUME_FAILED' }, 'the only ok leg cannot be its own source')
  await m.close()
  await t.rejects(m.replace(0, new MemoryDevice(SIZE)), { code: 'BLOCKDEV_CLOSED' })
})

t.test('a new leg that fails during the rebuild is dropped and replace rejects', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  const fresh = new FaultDevice(new MemoryDevice(SIZE))
  fresh.armAfter(3, { kind: 'eio', ops: ['write'] })
  await t.rejects(m.replace(1, fresh, { stepBytes: 16384 }), { code: 'VOLUME_MEMBER' })
  t.match(m.status(), { degraded: true, failed: false, members: [{ state: 'ok' }, { state: 'failed', reason: /EIO/ }] })
  await m.write(0, Buffer.alloc(4, 1))
  t.same(await m.read(0, 4), Buffer.alloc(4, 1), 'the volume serves on')
})

t.test('a leg failed by hand during its rebuild stops the rebuild', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  const rebuild = m.replace(1, new MemoryDevice(SIZE), { stepBytes: 16384, onProgress: (d) => {
      if (d === 32768) m.fail(1)
    },
  })
  await t.rejects(rebuild, { code: 'VOLUME_MEMBER' })
  t.equal(m.status().members[1]?.state, 'failed')
})

t.test('the rate limit is honoured', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  const started = performance.now()
  await m.replace(1, new MemoryDevice(SIZE), { rateBytesPerSec: 1024 * 1024, stepBytes: 16384 })
  const elapsed = performance.now() - started
  t.ok(elapsed >= 250 * 0.8, `256 KiB at 1 MiB/s took ${elapsed.toFixed(0)} ms (≥ 200)`)
})

t.test('a rebuilding leg serves reads only below its rebuilt watermark', async (t) => {
  // The source holds the rebuild's third step (bytes 128 KiB on) until released, so the watermark stays at 128 KiB.
  let release = (): void => undefined
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  let reached = (): void => undefined
  const atHalf = new Promise<void>((resolve) => {
    reached = resolve
  })
  class Held extends MemoryDevice {
    override async readInto(offset: number, target: Uint8Array): Promise<void> {
      if (offset === 131072 && target.length === 65536) {
        reached()
        await held
      }
      return super.readInto(offset, target)
    }
  }
  const m = new MirrorDevice([new Held(SIZE), new MemoryDevice(SIZE)])
  await m.write(0, pattern(SIZE, 9))
  const fresh = new CountingDevice(new MemoryDevice(SIZE))
  const rebuild = m.replace(1, fresh, { stepBytes: 65536 })
  await atHalf
  t.match(m.status(), { degraded: true, members: [{ state: 'ok' }, { state: 'rebuilding', rebuilt: 131072 }] })
  for (let i = 0; i < 10; i++) t.same(await m.read(SIZE - 512, 512), pattern(SIZE, 9).subarray(SIZE - 512))
  t.equal(fresh.reads, 0, 'no read above the watermark went to the new leg')
  for (let i = 0; i < 10; i++) t.same(await m.read(131072 - 512, 512), pattern(SIZE, 9).subarray(131072 - 512, 131072))
  t.equal(fresh.reads, 5, 'below the watermark it takes its turn')
  release()
  await rebuild
  t.equal(m.status().degraded, false)
})

t.test('the rebuild race: a step never writes bytes older than a client write', async (t) => {
  // The source leg hands out its bytes at once but answers 30 ms later. Unguarded, the step would
  // read the old bytes, the client write would land on both legs, then the step would write the
  // old bytes over the client's on the new leg.
  const source = new LaggyReadDevice(new MemoryDevice(SIZE), 30)
  const m = new MirrorDevice([source, new MemoryDevice(SIZE)])
  await m.write(0, Buffer.alloc(SIZE, 0xaa))
  m.fail(1)
  const fresh = new MemoryDevice(SIZE)
  const rebuild = m.replace(1, fresh, { stepBytes: SIZE })
  await new Promise((resolve) => setTimeout(resolve, 5))
  await m.write(4096, Buffer.alloc(4096, 0xbb))
  await rebuild
  t.same(await fresh.read(4096, 4096), Buffer.alloc(4096, 0xbb), 'the client write survives on the new leg')
  t.ok((await contents(fresh)).equals(await contents(source.inner)), 'legs identical')
})

t.test('replace under concurrent random writes ends with identical legs equal to the model', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const legs = [new LaggyReadDevice(new MemoryDevice(SIZE), 1), new MemoryDevice(SIZE)]
  const m = new MirrorDevice(legs)
  const model = new MemoryDevice(SIZE)
  const base = randomBytes(r, SIZE)
  await m.write(0, base)
  await model.write(0, base)
  m.fail(1)
  const fresh = new MemoryDevice(SIZE)
  let rebuilt = false
  const rebuild = m.replace(1, fresh, { stepBytes: 8192 }).then(() => {
    rebuilt = true
  })
  let during = 0
  const writer = async (): Promise<void> => {
    for (let i = 0; i < 150; i++) {
      const { offset, length } = randomRange(r, SIZE, 12000)
      const data = randomBytes(r, length)
      // The model takes it at issue: no two writers' ranges are in flight at once (one writer).
      await model.write(offset, data)
      await m.write(offset, data)
      if (!rebuilt) during++
      if (i % 10 === 0) t.same(await m.read(offset, length), data)
    }
  }
  await Promise.all([writer(), rebuild])
  t.ok(during > 10, `${during} writes landed while the rebuild ran`)
  await m.flush()
  const want = await contents(model)
  t.ok((await contents(legs[0]!)).equals(want), 'leg 0 equals the model')
  t.ok((await contents(fresh)).equals(want), 'the rebuilt leg equals the model')
  t.equal(m.status().degraded, false)
})

t.test('closing the mirror mid-rebuild stops it without failing any leg', async (t) => {
  const events: VolumeEvent[] = []
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)], { onEvent: (e) => events.push(e) })
  m.fail(1)
  const rebuild = t.rejects(m.replace(1, new MemoryDevice(SIZE), { stepBytes: 4096, rateBytesPerSec: 256 * 1024 }), { code: 'BLOCKDEV_CLOSED' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  await m.close()
  await rebuild
  t.strictSame(events.map((e) => e.kind).filter((k) => k !== 'rebuild-progress'), ['member-failed', 'rebuild-started'], 'no member-failed after close')
})

t.test('a dropped leg whose close fails does not stop the replace', async (t) => {
  const { ioError } = await import('../../../vfs/engine/blockdev/fault-device.ts')
  class DeadDisk extends MemoryDevice {
    override async close(): Promise<void> {
      throw ioError('EIO', 'close of a dead disk')
    }
  }
  const m = new MirrorDevice([new MemoryDevice(SIZE), new DeadDisk(SIZE)])
  await m.write(0, Buffer.alloc(100, 4))
  const fresh = new MemoryDevice(SIZE)
  await m.replace(1, fresh)
  t.same(await fresh.read(0, 100), Buffer.alloc(100, 4))
  t.equal(m.status().degraded, false)
})

t.test('a read in flight when its fallback leg is replaced by a blank one does not read the blank', async (t) => {
  const { ioError } = await import('../../../vfs/engine/blockdev/fault-device.ts')
  // Leg 0's read fails, but only after 20 ms: by then leg 1, the fallback, is a fresh blank disk.
  class SlowFail extends MemoryDevice {
    failing = false
    override async readInto(offset: number, target: Uint8Array): Promise<void> {
      if (!this.failing) return super.readInto(offset, target)
      await new Promise((resolve) => setTimeout(resolve, 20))
      throw ioError('EIO', 'slow failure')
    }
  }
  const slow = new SlowFail(SIZE)
  const m = new MirrorDevice([slow, new MemoryDevice(SIZE)])
  await m.write(0, Buffer.alloc(4096, 6))
  slow.failing = true
  const read = t.rejects(m.read(0, 4096), { code: 'VOLUME_FAILED' }, 'no whole copy could serve: an error, not zeros')
  const rebuild = t.rejects(m.replace(1, new MemoryDevice(SIZE), { stepBytes: 4096, rateBytesPerSec: 1024 * 1024 }), { code: 'VOLUME_FAILED' }, 'and the rebuild has no source either')
  await Promise.all([read, rebuild])
})

t.test('close wakes a rebuild out of a long rate sleep', async (t) => {
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  let stepped = (): void => undefined
  const first = new Promise<void>((resolve) => {
    stepped = resolve
  })
  // 64 KiB steps at 1 KiB/s: a 64 s sleep after the first step.
  const rebuild = t.rejects(m.replace(1, new MemoryDevice(SIZE), { stepBytes: 65536, rateBytesPerSec: 1024, onProgress: () => { stepped() } }), { code: 'BLOCKDEV_CLOSED' })
  await first
  const started = performance.now()
  await m.close()
  await rebuild
  t.ok(performance.now() - started < 2000, 'rejected at once, not after the sleep')
})

/** A new leg that calls `during(offset)` as each rebuild step writes it (before the write lands). */
class HookedLeg extends CountingDevice {
  during: (offset: number) => void = () => undefined
  override write(offset: number, data: Uint8Array): Promise<void> {
    this.during(offset)
    return super.write(offset, data)
  }
}

t.test('a rebuild step that saw client I/O gives way; idle steps do not', async (t) => {
  const STEP = 32 * 1024
  const m = new MirrorDevice([new MemoryDevice(SIZE), new MemoryDevice(SIZE)])
  await m.write(0, pattern(SIZE, 3))
  m.fail(1)
  const fresh = new HookedLeg(new MemoryDevice(SIZE))
  // Clients read and write during steps 1, 2 and 6 of the 8; the others run alone.
  const steps = [1, 2, 6].map((k) => k * STEP)
  const busy = new Set(steps)
  const client: Promise<unknown>[] = []
  fresh.during = (offset) => {
    // Once per step: the client's own write reaches the new leg too.
    if (!busy.delete(offset)) return
    client.push(m.read((offset + 4 * STEP) % SIZE, 4096))
    client.push(m.write(offset, Buffer.alloc(512, 9)))
  }
  const before = m.gaveWay
  await m.replace(1, fresh, { stepBytes: STEP })
  await Promise.all(client)
  t.equal(before, 0)
  t.equal(m.gaveWay, 3, 'exactly the three steps that saw client I/O gave way')
  const want = pattern(SIZE, 3)
  for (const at of steps) want.fill(9, at, at + 512)
  t.ok((await contents(fresh)).equals(want), 'the new leg holds the client writes made during the rebuild')
  t.ok((await contents(m.members[0]!)).equals(want))
  await m.replace(1, new MemoryDevice(SIZE), { stepBytes: STEP })
  t.equal(m.gaveWay, 3, 'a rebuild with no client I/O never gives way')
  await m.close()
})
