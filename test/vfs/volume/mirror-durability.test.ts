import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { below, contents, randomBytes, randomRange, rng, seedOf } from './volume-helpers.ts'

const SIZE = 128 * 1024

/** What a power cut right after the leg's last completed flush leaves on it, nothing pending applied. */
async function durableImage(leg: RecordingDevice, base: MemoryDevice): Promise<Buffer> {
  return contents(leg.crashState(base, { flushes: leg.flushes.length, apply: [] }))
}

t.test('after every mirror flush, each ok leg durably holds every acknowledged write, through a rebuild', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const blank = new MemoryDevice(SIZE)
  const legs = [new RecordingDevice(new MemoryDevice(SIZE)), new RecordingDevice(new MemoryDevice(SIZE))]
  const bases = [blank, blank]
  const m = new MirrorDevice(legs)
  const model = new MemoryDevice(SIZE)
  let rebuild: Promise<void> | undefined
  let rebuilt = false
  let checks = 0
  for (let op = 0; op < 240; op++) {
    if (op === 80) {
      // Replace leg 1 by a blank recorded disk and keep writing while it rebuilds.
      const fresh = new RecordingDevice(new MemoryDevice(SIZE))
      legs[1] = fresh
      bases[1] = new MemoryDevice(SIZE)
      rebuild = m.replace(1, fresh, { stepBytes: 8192 }).then(() => {
        rebuilt = true
      })
    }
    if (r() < 0.8) {
      // Up to three writes in flight at once, on disjoint ranges (the engine never overlaps them).
      const n = 1 + below(r, 3)
      const third = Math.floor(SIZE / 3)
      const writes = Array.from({ length: n }, (_, k) => {
        const g = randomRange(r, third, 6000)
        return { offset: k * third + g.offset, data: randomBytes(r, g.length) }
      })
      await Promise.all(writes.map((w) => m.write(w.offset, w.data)))
      for (const w of writes) await model.write(w.offset, w.data)
    } else {
      await m.flush()
      const want = await contents(model)
      for (const [i, leg] of legs.entries()) {
        if (m.status().members[i]?.state !== 'ok') continue
        if (!(await durableImage(leg, bases[i]!)).equals(want)) t.fail(`leg ${i} lost an acknowledged write at op ${op}`)
        checks++
      }
    }
  }
  await rebuild
  await m.flush()
  const want = await contents(model)
  t.ok(rebuilt, 'the rebuild finished')
  for (const [i, leg] of legs.entries()) t.ok((await durableImage(leg, bases[i]!)).equals(want), `leg ${i}: durable image equals the model`)
  t.ok(checks > 20, `${checks} durable-image checks`)
})
