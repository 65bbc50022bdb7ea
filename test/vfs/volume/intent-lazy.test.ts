import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { bitmapCopyLength, IntentBitmap } from '../../../vfs/volume/intent-bitmap.ts'
import type { BitmapPlace } from '../../../vfs/volume/intent-bitmap.ts'

// The bitmap's laziness (intent-bitmap.ts): a bit clears only after two quiet settles by default,
// and a stream sets the next region's bit before it gets there.
const REGION = 4096
const VOLUME = 16 * REGION
const LENGTH = bitmapCopyLength(VOLUME, { regionSize: REGION })

async function recorded(): Promise<{ recs: RecordingDevice[]; places: BitmapPlace[] }> {
  const mems = [0, 1].map(() => new MemoryDevice(LENGTH))
  await IntentBitmap.format(mems.map((dev) => ({ dev, offset: 0, length: LENGTH })), VOLUME, { regionSize: REGION })
  const recs = mems.map((m) => new RecordingDevice(m))
  return { recs, places: recs.map((dev) => ({ dev, offset: 0, length: LENGTH })) }
}

function regions(list: readonly { offset: number; length: number }[]): number[] {
  const out: number[] = []
  for (const r of list) for (let i = r.offset / REGION; i < Math.ceil((r.offset + r.length) / REGION); i++) out.push(i)
  return out
}

t.test('by default a bit clears at the second settle that finds its region quiet', async (t) => {
  const { recs, places } = await recorded()
  const bm = await IntentBitmap.open(places, VOLUME, { regionSize: REGION })
  await bm.mark(0, 1, 1)
  t.equal(recs[0]!.writes.length, 1)
  await bm.settle(2)
  t.strictSame(regions(bm.dirtyNow()), [0], 'one quiet settle: still dirty')
  t.equal(recs[0]!.writes.length, 1, 'and nothing written')
  await bm.mark(0, 1, 2)
  t.equal(recs[0]!.writes.length, 1, 'marking it again costs no I/O: the bit never left')
  t.equal(recs[0]!.flushes.length, 1)
  await bm.settle(3)
  t.strictSame(regions(bm.dirtyNow()), [0], 'the mark between restarted the count')
  await bm.settle(3)
  t.strictSame(regions(bm.dirtyNow()), [], 'two quiet settles in a row: cleared')
  t.equal(recs[0]!.writes.length, 2, 'the clearing written once')
  t.equal(recs[0]!.flushes.length, 1, 'not flushed (a stale bit costs only a resync)')
  await bm.close()
})

t.test('a region marked between every two settles keeps its bit and costs no I/O', async (t) => {
  const { recs, places } = await recorded()
  const bm = await IntentBitmap.open(places, VOLUME, { regionSize: REGION })
  let gen = 1
  await bm.mark(REGION, 1, gen++)
  const writes = recs[0]!.writes.length
  for (let i = 0; i < 10; i++) {
    await bm.mark(REGION + 8, 8, gen++)
    await bm.settle(gen)
  }
  t.strictSame(regions(bm.dirtyNow()), [1])
  t.equal(recs[0]!.writes.length, writes, 'ten marks and ten settles: no bitmap write')
  await bm.close()
})

t.test('quietSettles is checked', async (t) => {
  const { places } = await recorded()
  for (const quietSettles of [0, 1.5, 256]) {
    await t.rejects(IntentBitmap.open(places, VOLUME, { regionSize: REGION, quietSettles }), { code: 'VOLUME_LAYOUT', message: /quietSettles/ })
  }
})

t.test('a stream sets the next region\'s bit ahead, durably; other writes do not', async (t) => {
  const { recs, places } = await recorded()
  const bm = await IntentBitmap.open(places, VOLUME, { regionSize: REGION })
  await bm.mark(REGION - 100, 50) // region 0 alone: nothing before it
  t.strictSame(regions(bm.dirtyNow()), [0])
  await bm.mark(3 * REGION, REGION) // region 3, to its end, but region 2 is clean: no stream
  t.strictSame(regions(bm.dirtyNow()), [0, 3])
  await bm.mark(REGION, REGION / 2) // region 1 after 0, ending in its first half: not yet
  t.strictSame(regions(bm.dirtyNow()), [0, 1, 3])
  const flushes = recs[0]!.flushes.length
  await bm.mark(REGION + REGION / 2, REGION / 4 + 1) // into the last quarter of region 1: region 2 ahead
  t.strictSame(regions(bm.dirtyNow()), [0, 1, 2, 3], 'region 2 set ahead of the stream')
  await bm.mark(3 * REGION + REGION - 10, 10) // region 3's end after region 2: region 4 ahead
  t.strictSame(regions(bm.dirtyNow()), [0, 1, 2, 3, 4])
  await bm.close() // waits for the background writes
  t.ok(recs[0]!.flushes.length > flushes, 'the marks ahead were flushed')
  const again = await IntentBitmap.open(places, VOLUME, { regionSize: REGION })
  t.strictSame(regions(again.dirtyAtOpen()), [0, 1, 2, 3, 4], 'and are on disk')
  await again.mark(15 * REGION, REGION, 1)
  t.strictSame(regions(again.dirtyNow()), [0, 1, 2, 3, 4, 15], 'the last region: nothing set past the end')
  await again.close()
})
