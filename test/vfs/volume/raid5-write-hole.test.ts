import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { CrashState } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { bitmapCopyLength, IntentBitmap } from '../../../vfs/volume/intent-bitmap.ts'
import type { BitmapPlace } from '../../../vfs/volume/intent-bitmap.ts'
import { locate } from '../../../vfs/volume/parity.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { randomBytes, rng, WindowDevice } from './raid5-helpers.ts'

// Each member disk holds its RAID-5 data first and its copy of the intent bitmap after it, as md
// keeps its bitmap beside the data on every member: one recorder per disk then orders both.
const N = 3
const UNIT = 1024
const STRIPES = 4
const DATA = UNIT * STRIPES
const ROW = (N - 1) * UNIT
const VOLUME = ROW * STRIPES
const BITMAP = bitmapCopyLength(VOLUME, { regionSize: ROW })

interface Opened {
  raid: Raid5Device
  bitmap: IntentBitmap
}

async function openOn(disks: readonly BlockDevice[]): Promise<Opened> {
  const places: BitmapPlace[] = disks.map((dev) => ({ dev, offset: DATA, length: BITMAP }))
  const bitmap = await IntentBitmap.open(places, VOLUME, { regionSize: ROW })
  const raid = new Raid5Device(
    disks.map((d) => new WindowDevice(d, 0, DATA)),
    { unit: UNIT, intent: bitmap },
  )
  return { raid, bitmap }
}

/** Disks holding `old` on a clean volume (parity right, bitmap clean and durable). */
async function cleanDisks(old: Buffer): Promise<MemoryDevice[]> {
  const disks = Array.from({ length: N }, () => new MemoryDevice(DATA + BITMAP))
  await IntentBitmap.format(disks.map((dev) => ({ dev, offset: DATA, length: BITMAP })), VOLUME, { regionSize: ROW })
  const { raid } = await openOn(disks)
  await raid.write(0, old)
  await raid.flush() // settles: the bits cleared, written
  await raid.flush() // and that clearing made durable
  return disks
}

/** Every crash state of one recorder after its last flush: nothing, each pending write whole, or torn at each sector. */
function crashChoices(rec: RecordingDevice): CrashState[] {
  const k = rec.flushes.length
  const out: CrashState[] = [{ flushes: k, apply: [] }]
  rec.pending(k).forEach((w, i) => {
    out.push({ flushes: k, apply: [i] })
    const sectors = Math.ceil((w.offset + w.data.length) / 512) - Math.floor(w.offset / 512)
    for (let s = 1; s < sectors; s++) out.push({ flushes: k, apply: [], torn: { write: i, sectors: s } })
  })
  return out
}

function product<T>(lists: readonly (readonly T[])[]): T[][] {
  return lists.reduce<T[][]>((acc, list) => acc.flatMap((prefix) => list.map((x) => [...prefix, x])), [[]])
}

t.test('write hole: crash mid partial-stripe update, then lose a member; resync from the bitmap keeps every byte old or new', async (t) => {
  const r = rng(2024)
  const old = randomBytes(r, VOLUME)
  const bases = await cleanDisks(old)
  const recs = bases.map((b) => new RecordingDevice(b.clone()))
  const live = await openOn(recs)
  t.strictSame(live.bitmap.dirtyAtOpen(), [], 'a clean start')
  // 600 bytes of stripe 1's first data unit, from 200 bytes in: two sectors on the data member and on the parity member.
  const offset = ROW + 200
  const fresh = randomBytes(r, 600)
  const place = locate(offset, N, UNIT)
  t.strictSame([place.stripe, place.member], [1, 2])
  await live.raid.write(offset, fresh)
  const expectedNew = Buffer.from(old)
  fresh.copy(expectedNew, offset)

  // The mark reached each disk, durably, before any data or parity write was issued.
  for (const [i, rec] of recs.entries()) {
    const bitmapWrite = rec.writes.find((w) => w.offset >= DATA)
    const dataWrite = rec.writes.find((w) => w.offset < DATA)
    t.ok(bitmapWrite !== undefined, `disk ${i}: the bitmap was written`)
    if (dataWrite === undefined) continue
    t.ok(rec.flushes.some((f) => f.called > bitmapWrite!.completed && f.completed < dataWrite.issued), `disk ${i}: bitmap write + flush completed before the stripe write was issued`)
  }
  t.equal(recs.filter((rec) => rec.pending(rec.flushes.length).length > 0).length, 2, 'data and parity writes are pending on two disks')

  const states = product(recs.map(crashChoices))
  let garbageWithout = 0
  let checked = 0
  for (const state of states) {
    const crashed = recs.map((rec, i) => rec.crashState(bases[i]!, state[i]!))
    for (const withResync of [true, false]) {
      for (let lost = 0; lost < N; lost++) {
        const disks = crashed.map((d) => d.clone())
        const { raid, bitmap } = await openOn(disks)
        t.strictSame(bitmap.dirtyAtOpen(), [{ offset: ROW, length: ROW }], 'stripe 1\'s region is dirty at open')
        if (withResync) t.equal(await raid.resync(), 1, 'resync rewrites one stripe')
        raid.fail(lost)
        const got = await raid.read(0, VOLUME)
        let bad = 0
        for (let i = 0; i < VOLUME; i++) if (got[i] !== old[i] && got[i] !== expectedNew[i]) bad++
        if (withResync) {
          t.equal(bad, 0, `state ${JSON.stringify(state)}, member ${lost} lost, after resync: every byte old or new`)
          checked++
        } else if (bad > 0) garbageWithout++
      }
    }
  }
  t.ok(checked >= 3 * 9, `${checked} crash states × lost members checked`)
  t.ok(garbageWithout > 0, `without the resync ${garbageWithout} of them reconstruct garbage: the bitmap matters`)
})

t.test('resync touches the dirty regions only, and the flushes after it leave the bitmap clean', async (t) => {
  const r = rng(77)
  const old = randomBytes(r, VOLUME)
  const disks = await cleanDisks(old)
  // Damage the parity of stripes 0 and 3 behind the volume's back, then dirty only stripe 3's region.
  await disks[2]!.write(0, Buffer.alloc(10, 0xff)) // stripe 0's parity is on member 2
  await disks[0]!.write(3 * UNIT, Buffer.alloc(10, 0xff)) // stripe 3's parity is on member 0
  const first = await openOn(disks)
  await first.bitmap.mark(3 * ROW, 1)
  const events: string[] = []
  const { raid, bitmap } = await openOn(disks)
  const withEvents = new Raid5Device(raid.members, { unit: UNIT, intent: bitmap, onEvent: (e) => events.push(e.kind) })
  t.strictSame(bitmap.dirtyAtOpen(), [{ offset: 3 * ROW, length: ROW }])
  t.equal(await withEvents.resync(), 1)
  t.strictSame(events, ['resync-started', 'resync-done'])
  t.equal((await withEvents.scrub()).mismatches, 1, 'stripe 0, never dirty, was left alone')
  t.strictSame(bitmap.dirtyNow(), [{ offset: 3 * ROW, length: ROW }], 'one quiet flush (the resync\'s) leaves the bit: it clears at the second (quietSettles)')
  await withEvents.flush()
  t.strictSame(bitmap.dirtyNow(), [], 'the second quiet flush settled the bitmap')
  t.strictSame((await openOn(disks)).bitmap.dirtyAtOpen(), [], 'and the clearing is on disk')
})

t.test('a dirty stripe missing a data unit cannot be resynced: its bit stays set', async (t) => {
  const old = randomBytes(rng(5), VOLUME)
  const disks = await cleanDisks(old)
  await (await openOn(disks)).bitmap.mark(ROW, ROW + 1) // stripes 1 and 2
  const { raid, bitmap } = await openOn(disks)
  raid.fail(2) // data of stripe 1 (unit 0) and stripe 2 (unit 1); stripe 1's parity is on member 1
  t.equal(await raid.resync(), 0, 'nothing to rewrite: each dirty stripe misses a data unit')
  t.strictSame(bitmap.dirtyNow(), [{ offset: ROW, length: 2 * ROW }], 'the doubt is kept')
  await raid.flush()
  await raid.flush()
  t.strictSame(bitmap.dirtyNow(), [], 'two later quiet flushes settle it (the data is what it is)')
})
