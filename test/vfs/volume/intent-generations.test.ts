import t from 'tap'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { bitmapCopyLength, IntentBitmap } from '../../../vfs/volume/intent-bitmap.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { WriteGenerations } from '../../../vfs/volume/write-generations.ts'

// Settling by generation (layer.ts, IntentLog): under constant writes a flush is never quiet, and
// still the regions no longer written must clear, while a region written during the flush stays.
const UNIT = 4096
const ROW = 2 * UNIT // a 3-member RAID-5's stripe of data; also the bitmap's region
const REGIONS = 8
const VOLUME = ROW * REGIONS
const BITMAP = bitmapCopyLength(VOLUME, { regionSize: ROW })

const turn = (): Promise<void> => new Promise((ok) => setImmediate(ok))

/**
 * A member whose writes and flushes wait for the test to release them (one gate for all), and
 * otherwise take one turn of the event loop, as a disk's do: a writer looping on it always has a
 * write in flight, yet lets timers and the test's own steps run.
 */
class GatedDevice extends PassThroughDevice {
  static gate: Promise<void> | null = null
  override async write(offset: number, data: Uint8Array): Promise<void> {
    await (GatedDevice.gate ?? turn())
    return this.inner.write(offset, data)
  }
  override async flush(): Promise<void> {
    await (GatedDevice.gate ?? turn())
    return this.inner.flush()
  }
}

function hold(): () => void {
  let release = (): void => undefined
  GatedDevice.gate = new Promise<void>((ok) => (release = ok))
  return () => {
    GatedDevice.gate = null
    release()
  }
}

async function bitmapOn(count: number): Promise<IntentBitmap> {
  const places = Array.from({ length: count }, () => ({ dev: new MemoryDevice(BITMAP), offset: 0, length: BITMAP }))
  await IntentBitmap.format(places, VOLUME, { regionSize: ROW })
  return IntentBitmap.open(places, VOLUME, { regionSize: ROW, quietSettles: 1 })
}

/** Region indexes dirty now. */
function dirty(bm: IntentBitmap): number[] {
  const out: number[] = []
  for (const r of bm.dirtyNow()) for (let i = r.offset / ROW; i < (r.offset + r.length) / ROW; i++) out.push(i)
  return out
}

t.test('WriteGenerations: the horizon is the oldest running generation, or the next one', async (t) => {
  const g = new WriteGenerations()
  t.equal(g.horizon(), 1)
  let finishFirst = (): void => undefined
  const first = g.run(
    (n) =>
      new Promise<number>((ok) => {
        finishFirst = () => {
          ok(n)
        }
      }),
  )
  const second = await g.run(async (n) => n)
  t.equal(second, 2)
  t.equal(g.horizon(), 1, 'generation 1 still runs: nothing at or above it is known complete')
  finishFirst()
  t.equal(await first, 1)
  t.equal(g.horizon(), 3, 'both done: the next generation')
  await t.rejects(g.run(() => Promise.reject(new Error('boom'))), /boom/)
  t.equal(g.horizon(), 4, 'a failed operation stops running too')
})

t.test('IntentBitmap.settle(before) clears regions last marked below before, and only those', async (t) => {
  const bm = await bitmapOn(1)
  await bm.mark(0, 1, 1)
  await bm.mark(ROW, 1, 2)
  await bm.mark(2 * ROW, ROW + 1, 3) // regions 2 and 3
  await bm.mark(0, 1, 4) // region 0 marked again, later
  t.strictSame(dirty(bm), [0, 1, 2, 3])
  await bm.settle(3)
  t.strictSame(dirty(bm), [0, 2, 3], 'region 1 (generation 2) cleared; region 0 was marked again by 4')
  await bm.settle(5)
  t.strictSame(dirty(bm), [])
  await bm.close()
})

interface Subject {
  name: string
  make(members: BlockDevice[], intent: IntentBitmap): BlockDevice
  members: number
}

const subjects: Subject[] = [
  { name: 'mirror', members: 2, make: (m, intent) => new MirrorDevice(m, { intent }) },
  { name: 'raid5', members: 3, make: (m, intent) => new Raid5Device(m, { unit: UNIT, intent }) },
]

for (const s of subjects) {
  t.test(`${s.name}: a flush under constant writes clears regions no longer written, keeps those written during it`, async (t) => {
    const bm = await bitmapOn(s.members)
    const members = Array.from({ length: s.members }, () => new GatedDevice(new MemoryDevice(VOLUME)))
    const dev = s.make(members, bm)
    const A = 0 // written all the time
    const B = 3 * ROW // written once, before
    const C = 6 * ROW // written once, while a flush runs
    await dev.write(B, Buffer.alloc(ROW, 0xb))
    t.strictSame(dirty(bm), [3])

    // A write to A is held at the members when the flush begins: the flush is not quiet.
    const release = hold()
    const writeA = dev.write(A, Buffer.alloc(ROW, 0xa))
    await turn()
    const flush = dev.flush()
    const writeC = dev.write(C, Buffer.alloc(ROW, 0xc)) // started during the flush
    await turn()
    release()
    await Promise.all([writeA, flush, writeC])
    t.strictSame(dirty(bm), [0, 6], 'B cleared although the flush was never quiet; A (running) and C (started during it) stay')

    // Constant writers on A and periodic flushes: C, no longer written, clears; A never does.
    const state = { stop: false }
    let writes = 0
    const writer = (async () => {
      while (!state.stop) {
        await dev.write(A, Buffer.alloc(ROW, writes & 0xff))
        writes++
      }
    })()
    const flushes: number[][] = []
    for (let i = 0; i < 4; i++) {
      await turn()
      await dev.flush()
      flushes.push(dirty(bm))
    }
    state.stop = true
    await writer
    t.ok(writes > 4, `the writer kept writing (${writes} writes)`)
    t.strictSame(flushes.at(-1), [0], 'after flushes under constant writes only the region still written is dirty')
    t.ok(flushes.every((d) => !d.includes(3) && !d.includes(6)), 'B and C stay clear')

    // Once the writer stops, a flush settles A too; the bits on disk agree after a reopen.
    await dev.flush()
    t.strictSame(dirty(bm), [])
    await dev.flush() // makes the clearing durable (settle writes lazily)
    await dev.close()
  })
}
