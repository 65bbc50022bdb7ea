import t from 'tap'
import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { JointRecorder, sectorsOf } from './joint-recorder.ts'
import type { JointWrite } from './joint-recorder.ts'
import { pattern, rng, seedFrom } from './snapshot-helpers.ts'

const KiB = 1024
const CS = 4096
const ORIGIN = 0
const STORE = 1

interface Op {
  readonly name: string
  readonly issued: number
  resolved: number
}

interface Recorded {
  rec: JointRecorder
  bases: MemoryDevice[]
  models: Map<string, Buffer>
  creates: Op[]
  deletes: Op[]
}

interface Actions {
  vol: OriginDevice
  create: (name: string) => Promise<void>
  remove: (name: string) => Promise<void>
}

/** Runs `workload` on a 32 KiB origin and a store of `storeSize` bytes, logging both devices on one clock. */
async function record(storeSize: number, workload: (a: Actions) => Promise<void>): Promise<Recorded> {
  const originMem = new MemoryDevice(32 * KiB)
  await originMem.write(0, pattern(1, 32 * KiB))
  const storeMem = new MemoryDevice(storeSize)
  await SnapshotStore.format(storeMem, { chunkSize: CS })
  const bases = [originMem.clone(), storeMem.clone()]
  const rec = new JointRecorder()
  const vol = new OriginDevice(rec.wrap(ORIGIN, originMem), await SnapshotStore.open(rec.wrap(STORE, storeMem)), { now: () => 0 })
  const models = new Map<string, Buffer>()
  const creates: Op[] = []
  const deletes: Op[] = []
  const create = async (name: string): Promise<void> => {
    models.set(name, originMem.toBuffer())
    const op: Op = { name, issued: rec.now, resolved: Infinity }
    creates.push(op)
    await vol.createSnapshot(name)
    op.resolved = rec.now
  }
  const remove = async (name: string): Promise<void> => {
    const op: Op = { name, issued: rec.now, resolved: Infinity }
    deletes.push(op)
    await vol.deleteSnapshot(name)
    await vol.whenIdle()
    op.resolved = rec.now
  }
  await workload({ vol, create, remove })
  await vol.flush()
  return { rec, bases, models, creates, deletes }
}

/** Opens every crash state (all subsets of up to 6 pending writes, else 64 samples, plus torn ones) and checks each snapshot. */
async function checkCrashes(t: Test, { rec, bases, models, creates, deletes }: Recorded, random: (n: number) => number): Promise<{ states: number; compared: number }> {
  let states = 0
  let snapshotsChecked = 0
  for (let at = 0; at <= rec.now; at++) {
    const { durable, pending } = rec.split(at)
    const choices: { apply: JointWrite[]; torn?: { write: JointWrite; sectors: number } }[] = []
    if (pending.length <= 6) {
      for (let mask = 0; mask < 1 << pending.length; mask++) choices.push({ apply: pending.filter((_, i) => (mask & (1 << i)) !== 0) })
    } else {
      for (let i = 0; i < 64; i++) choices.push({ apply: pending.filter(() => random(2) === 0) })
    }
    for (const w of pending) {
      const n = sectorsOf(w, 512)
      if (n > 1) choices.push({ apply: pending.filter((p) => p !== w && random(2) === 0), torn: { write: w, sectors: 1 + random(n - 1) } })
    }
    for (const choice of choices) {
      const writes = [...durable, ...choice.apply, ...(choice.torn === undefined ? [] : [choice.torn.write])]
      const [origin, storeDev] = rec.build(bases, writes, choice.torn)
      if (origin === undefined || storeDev === undefined) throw new Error('two devices')
      const where = `crash at tick ${at}, ${choice.apply.length} of ${pending.length} pending${choice.torn === undefined ? '' : ', one torn'}`
      const vol = new OriginDevice(origin, await SnapshotStore.open(storeDev))
      states++
      const names = new Set(vol.listSnapshots().map((s) => s.name))
      for (const op of creates) {
        const deleted = deletes.some((d) => d.name === op.name && d.issued < at)
        if (op.resolved < at && !deleted && !names.has(op.name)) t.fail(`${where}: snapshot ${op.name} was created but is gone`)
        if (op.issued >= at && names.has(op.name)) t.fail(`${where}: snapshot ${op.name} exists before its create`)
      }
      for (const s of vol.listSnapshots()) {
        if (deletes.some((d) => d.name === s.name && d.resolved < at)) t.fail(`${where}: ${s.name} still listed after its delete finished`)
        if (s.state !== 'live') continue
        const got = await vol.snapshot(s.name).read(0, origin.size)
        if (!got.equals(models.get(s.name) ?? Buffer.alloc(0))) t.fail(`${where}: snapshot ${s.name} is not its creation-time content`)
        snapshotsChecked++
      }
      // Whatever the crash left, a resumed delete and deleting the rest frees every chunk.
      await vol.whenIdle()
      for (const s of vol.listSnapshots()) await vol.deleteSnapshot(s.name)
      await vol.whenIdle()
      if (vol.store.usage().used !== 0) t.fail(`${where}: ${vol.store.usage().used} chunks leaked`)
    }
  }
  t.comment(`${states} crash states over ${rec.now} ticks, ${snapshotsChecked} snapshot images compared`)
  return { states, compared: snapshotsChecked }
}

t.test('after a crash at any point every snapshot reads exactly its creation-time content', async (t) => {
  const seed = seedFrom('SNAPSHOT_CRASH_SEED')
  t.comment(`seed ${seed}`)
  // Creates, concurrent writes sharing chunks, a delete, and a create that takes the deleted id.
  const recorded = await record(64 * KiB, async ({ vol, create, remove }) => {
    await create('s1')
    await Promise.all([vol.write(0, pattern(2, 2 * CS)), vol.write(5 * CS + 100, pattern(3, 200))])
    await create('s2')
    await Promise.all([vol.write(CS + 7, pattern(4, 50)), vol.write(7 * CS, pattern(5, CS)), vol.write(100, pattern(6, 10))])
    await remove('s1')
    await create('s3') // takes s1's id, 0
    await Promise.all([vol.write(0, pattern(7, 3 * CS)), vol.write(5 * CS, pattern(8, 1))])
  })
  const { states, compared } = await checkCrashes(t, recorded, rng(seed))
  t.ok(states > 500, `${states} crash states`)
  t.ok(compared > 500, `${compared} snapshots compared`)
})

t.test('a crash while a full store invalidates the oldest snapshot leaves the others exact', async (t) => {
  const seed = seedFrom('SNAPSHOT_CRASH_SEED')
  t.comment(`seed ${seed}`)
  // A 32 KiB store holds 4 chunks.
  const recorded = await record(32 * KiB, async ({ vol, create }) => {
    await create('old')
    await vol.write(0, pattern(2, 3 * CS))
    await create('mid')
    await vol.write(5 * CS, pattern(3, 10)) // shared copy: the store is full
    await create('new')
    await Promise.all([vol.write(6 * CS, pattern(4, 10)), vol.write(CS, pattern(5, 10))]) // old must go
    await vol.write(7 * CS, pattern(6, 10)) // the fourth chunk again
    await vol.write(3 * CS, pattern(7, 10)) // and now mid must go
    t.strictSame(vol.listSnapshots().map((s) => [s.name, s.state]), [['old', 'invalid'], ['mid', 'invalid'], ['new', 'live']])
  })
  const { states, compared } = await checkCrashes(t, recorded, rng(seed))
  t.ok(states > 200, `${states} crash states`)
  t.ok(compared > 200, `${compared} snapshots compared`)
})
