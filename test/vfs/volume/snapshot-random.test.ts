import t from 'tap'
import type { Test } from 'tap'
import { pattern, makeVolume, reopen, rng, seedFrom, SlowDevice } from './snapshot-helpers.ts'
import type { Volume, Wrap } from './snapshot-helpers.ts'

const KiB = 1024
const SIZE = 64 * KiB

interface Model {
  readonly name: string
  readonly content: Buffer
  state: 'live' | 'invalid'
}

async function workload(t: Test, seed: number, steps: number, wrap?: Wrap): Promise<void> {
  t.comment(`seed ${seed}`)
  const random = rng(seed)
  const slow = wrap === undefined ? {} : { wrap }
  // A 64 KiB store holds 12 chunks of 4 KiB, fewer than the origin's 16: it fills, and snapshots get invalidated.
  let v: Volume = await makeVolume({ originSize: SIZE, storeSize: 64 * KiB, chunkSize: 4096, fill: 1, ...slow })
  t.equal(v.store.layout.chunkCount, 12)
  const origin = Buffer.from(v.origin.toBuffer())
  let models: Model[] = []
  let made = 0
  let tag = 100
  const counts = { write: 0, create: 0, delete: 0, reopen: 0, invalidated: 0, compared: 0 }
  const fail = (step: number, what: string): void => {
    t.fail(`seed ${seed}, step ${step}: ${what}`)
  }

  for (let step = 0; step < steps; step++) {
    const dice = random(100)
    if (dice < 55) {
      // One to three writes in flight together, on disjoint ranges (they may share a chunk).
      const ranges: [number, number][] = []
      for (let n = 1 + random(3); n > 0; n--) {
        const length = 1 + random(6000)
        const offset = random(SIZE - length)
        if (ranges.every(([o, l]) => offset + length <= o || o + l <= offset)) ranges.push([offset, length])
      }
      const writes = ranges.map(([offset, length]) => {
        const data = pattern(tag++, length)
        data.copy(origin, offset)
        return v.vol.write(offset, data)
      })
      await Promise.all(writes)
      counts.write += writes.length
    } else if (dice < 70) {
      if (models.filter((m) => m.state === 'live').length < 8) {
        // Writes issued before the create are in the snapshot, those issued after it wait for it:
        // the snapshot is one point in time even with writes in flight on both sides.
        const name = `snap-${made++}`
        const inFlight: Promise<void>[] = []
        const batch = (): void => {
          // Disjoint within a batch: two writes in flight to one range have no defined order.
          const ranges: [number, number][] = []
          for (let n = random(3); n > 0; n--) {
            const length = 1 + random(3000)
            const offset = random(SIZE - length)
            if (!ranges.every(([o, l]) => offset + length <= o || o + l <= offset)) continue
            ranges.push([offset, length])
            const data = pattern(tag++, length)
            data.copy(origin, offset)
            inFlight.push(v.vol.write(offset, data))
          }
        }
        batch()
        const content = Buffer.from(origin)
        const created = v.vol.createSnapshot(name)
        batch()
        await Promise.all([created, ...inFlight])
        models.push({ name, content, state: 'live' })
        counts.create++
      }
    } else if (dice < 85) {
      const victim = models[random(models.length)]
      if (victim !== undefined) {
        await v.vol.deleteSnapshot(victim.name)
        models = models.filter((m) => m !== victim)
        counts.delete++
        if (random(2) === 0) await v.vol.whenIdle()
      }
    } else if (dice < 90) {
      // A restart, sometimes with a delete still freeing chunks: open resumes it.
      await v.vol.flush()
      v = await reopen(v, slow)
      counts.reopen++
    }

    if (!origin.equals(await v.vol.read(0, SIZE))) fail(step, 'the origin differs from its model')
    const listed = new Map(v.vol.listSnapshots().filter((s) => s.state !== 'deleting').map((s) => [s.name, s.state]))
    if (listed.size !== models.length || models.some((m) => !listed.has(m.name))) fail(step, `listed ${[...listed.keys()].join(',')}, model ${models.map((m) => m.name).join(',')}`)
    // Newly invalid snapshots must be the oldest ones still live (models are in creation order).
    const live = models.filter((m) => m.state === 'live')
    const nowInvalid = live.filter((m) => listed.get(m.name) === 'invalid')
    if (nowInvalid.some((m, i) => live[i] !== m)) fail(step, `invalidated ${nowInvalid.map((m) => m.name).join(',')}, not the oldest`)
    for (const m of nowInvalid) m.state = 'invalid'
    counts.invalidated += nowInvalid.length
    for (const m of models) {
      if (m.state !== 'live') continue
      if (!(await v.vol.snapshot(m.name).read(0, SIZE)).equals(m.content)) fail(step, `snapshot ${m.name} differs from its model`)
      counts.compared++
    }
    const { used, chunks } = v.store.usage()
    if (used > chunks) fail(step, `${used} of ${chunks} chunks used`)
  }
  t.comment(JSON.stringify(counts))
  for (const m of models) await v.vol.deleteSnapshot(m.name)
  await v.vol.whenIdle()
  t.strictSame(v.store.usage(), { chunks: 12, used: 0 }, 'every chunk free once every snapshot is deleted')
  const again = await reopen(v)
  t.strictSame(again.store.usage(), { chunks: 12, used: 0 }, 'and so after a reopen')
  t.strictSame(again.vol.listSnapshots(), [])
  t.ok(counts.compared > steps / 5, `${counts.compared} snapshot images compared`)
}

t.test('a seeded random workload of writes, creates, deletes and reopens matches its models after every step', async (t) => {
  await workload(t, seedFrom('SNAPSHOT_RANDOM_SEED'), 1000)
})

t.test('the same on devices that delay every operation, so copies, deletes and reads interleave', async (t) => {
  const seed = seedFrom('SNAPSHOT_RANDOM_SEED')
  let n = 0
  await workload(t, seed, 600, (dev) => new SlowDevice(dev, seed + n++))
})
