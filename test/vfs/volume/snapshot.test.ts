import t from 'tap'
import { join } from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { MAP_OFFSET, TABLE_OFFSET } from '../../../vfs/volume/snapshot-format.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { CountingDevice, makeVolume, pattern, reopen, SlowDevice } from './snapshot-helpers.ts'

const KiB = 1024
const CS = 4096

t.test('a snapshot keeps its creation-time content while the origin is overwritten', async (t) => {
  const { vol, origin, store, storeMem } = await makeVolume({ originSize: 64 * KiB, storeSize: 256 * KiB, chunkSize: CS, fill: 1 })
  const model = origin.toBuffer()
  const s = await vol.createSnapshot('s1')
  t.strictSame(s, { id: 0, name: 's1', created: s.created, seq: 0, state: 'live' })
  // 1000 bytes straddling chunks 2 and 3, and a whole chunk 7.
  await vol.write(2 * CS + 3596, pattern(2, 1000))
  await vol.write(7 * CS, pattern(3, CS))
  const snap = vol.snapshot('s1')
  t.ok((await snap.read(0, 64 * KiB)).equals(model), 'the snapshot reads as the origin did at creation')
  t.ok((await vol.read(2 * CS + 3596, 1000)).equals(pattern(2, 1000)), 'the origin has the new bytes')
  t.equal(store.usage().used, 3, 'three chunks copied: 2, 3 and 7')
  // Store chunk 0 holds origin chunk 2 (the writes copy in parallel, lowest store chunk first).
  t.ok((await storeMem.read(store.chunkOffset(0), CS)).equals(model.subarray(2 * CS, 3 * CS)), 'store chunk 0 holds the old origin chunk 2')
  t.equal(
    (await storeMem.read(MAP_OFFSET, 32)).toString('hex'),
    '0000000000000002' + '0000000000000001' + '0000000000000000' + '00000000' + 'b922af11',
    'map slot 0: origin chunk 2, mask 1 (snapshot id 0), reserved, crc32',
  )
  t.equal((await storeMem.read(MAP_OFFSET + 3 * 32, 32)).toString('hex'), '0'.repeat(64), 'map slot 3 free')
  // A second write to a copied chunk costs the store nothing.
  const before = store.usage().used
  await vol.write(7 * CS + 100, pattern(4, 10))
  t.equal(store.usage().used, before)
  t.ok((await snap.read(7 * CS, CS)).equals(model.subarray(7 * CS, 8 * CS)))
  t.ok((await snap.read(2 * CS + 4000, 200)).equals(model.subarray(2 * CS + 4000, 2 * CS + 4200)), 'a read across a copied and an uncopied chunk')
})

t.test('snapshots share one copy; each delete frees only what no other snapshot holds', async (t) => {
  const { vol, origin, store, storeMem } = await makeVolume({ originSize: 32 * KiB, storeSize: 128 * KiB, chunkSize: CS, fill: 5 })
  const counted = new CountingDevice(store.device)
  const m0 = origin.toBuffer()
  await vol.createSnapshot('a')
  await vol.createSnapshot('b')
  await vol.write(2 * CS, pattern(6, CS))
  t.equal(store.usage().used, 1, 'one copy serves a and b')
  t.strictSame([...store.entries()].map((e) => e.name), ['a', 'b'])
  t.equal(store.find(2, 0), store.find(2, 1), 'the same exception')
  t.equal(store.find(2, 0)?.mask, 0b11n)
  const m1 = origin.toBuffer()
  await vol.createSnapshot('c')
  await vol.write(2 * CS, pattern(7, CS))
  await vol.write(2 * CS + 5, pattern(8, 5))
  t.equal(store.usage().used, 2, 'c needed its own copy of chunk 2, once')
  t.equal(store.find(2, 2)?.mask, 0b100n)
  t.ok((await vol.snapshot('a').read(0, 32 * KiB)).equals(m0))
  t.ok((await vol.snapshot('b').read(0, 32 * KiB)).equals(m0))
  t.ok((await vol.snapshot('c').read(0, 32 * KiB)).equals(m1))
  t.equal(counted.bytesWritten, 0)

  await vol.deleteSnapshot('b')
  t.equal(vol.listSnapshots().find((s) => s.name === 'b')?.state, 'deleting', 'marked at once')
  t.throws(() => vol.snapshot('b'), { code: 'VOLUME_SNAPSHOT' })
  await vol.whenIdle()
  t.strictSame(vol.listSnapshots().map((s) => s.name), ['a', 'c'])
  t.equal(store.usage().used, 2, 'a still holds the shared copy')
  t.equal(store.find(2, 0)?.mask, 0b01n)
  t.ok((await vol.snapshot('a').read(0, 32 * KiB)).equals(m0))
  await vol.deleteSnapshot('a')
  await vol.whenIdle()
  t.equal(store.usage().used, 1)
  await vol.deleteSnapshot('c')
  await vol.whenIdle()
  t.strictSame(store.usage(), { chunks: store.layout.chunkCount, used: 0 }, 'empty again')
  t.strictSame(vol.listSnapshots(), [])
  // The freed ids and chunks are used again, and the reopened store agrees.
  await vol.createSnapshot('d')
  t.equal(vol.listSnapshots()[0]?.id, 0)
  await vol.write(0, pattern(9, 1))
  t.equal(store.usage().used, 1)
  const again = await reopen({ origin, storeMem })
  t.equal(again.store.usage().used, 1)
  t.strictSame(again.vol.listSnapshots().map((s) => [s.name, s.state]), [['d', 'live']])
})

t.test('create is O(1): a 1 GiB sparse origin, one table slot written', async (t) => {
  const originMem = new MemoryDevice(1024 * 1024 * KiB)
  const origin = new CountingDevice(originMem)
  const storeDev = new CountingDevice(new MemoryDevice(64 * 1024 * KiB))
  const store = await SnapshotStore.format(storeDev)
  const vol = new OriginDevice(origin, store)
  storeDev.reset()
  const started = performance.now()
  await vol.createSnapshot('big')
  t.comment(`create took ${(performance.now() - started).toFixed(2)} ms`)
  t.equal(origin.bytesWritten, 0, 'no origin byte written')
  t.strictSame(storeDev.writes, [{ offset: TABLE_OFFSET, length: 128 }], 'one 128-byte table slot')
  t.equal(storeDev.flushes, 1, 'made durable by one flush')
  t.equal(origin.flushes, 1, 'the origin flushed first, so the snapshot content is durable')
  storeDev.reset()
  await vol.write(512 * 1024 * KiB, Buffer.alloc(512, 1))
  t.equal(storeDev.bytesWritten, 64 * KiB + 32, 'a first write copies one 64 KiB chunk and writes one map slot')
  t.equal(storeDev.flushes, 2, 'data durable, then its map slot durable, before the origin write')
  t.ok((await vol.snapshot('big').read(512 * 1024 * KiB, 512)).equals(Buffer.alloc(512)))
})

t.test('an origin whose size is not a whole number of chunks: the last, short chunk is kept too', async (t) => {
  const { vol, origin, store } = await makeVolume({ originSize: 10 * KiB, storeSize: 64 * KiB, chunkSize: CS, fill: 12 })
  const model = origin.toBuffer()
  await vol.createSnapshot('s')
  await vol.write(10 * KiB - 512, pattern(13, 512))
  await vol.write(0, pattern(14, 10 * KiB))
  t.equal(store.usage().used, 3)
  t.ok((await vol.snapshot('s').read(0, 10 * KiB)).equals(model))
  await t.rejects(vol.snapshot('s').read(10 * KiB - 1, 2), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(vol.write(10 * KiB, Buffer.alloc(1)), { code: 'BLOCKDEV_RANGE' })
})

t.test('concurrent writes to one chunk wait for one copy', async (t) => {
  const { vol, origin, store } = await makeVolume({ originSize: 64 * KiB, storeSize: 128 * KiB, chunkSize: CS, fill: 11 })
  const model = origin.toBuffer()
  await vol.createSnapshot('s')
  const counted = new CountingDevice(store.device)
  await Promise.all([0, 1, 2, 3, 4].map((i) => vol.write(CS + i * 100, pattern(20 + i, 100))))
  t.equal(store.usage().used, 1, 'one copy')
  t.ok((await vol.snapshot('s').read(CS, CS)).equals(model.subarray(CS, 2 * CS)))
  for (let i = 0; i < 5; i++) t.ok((await vol.read(CS + i * 100, 100)).equals(pattern(20 + i, 100)))
  t.equal(counted.bytesWritten, 0)
})

t.test('a snapshot read racing origin writes always sees the snapshot-time bytes', async (t) => {
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve))
  }
  let checked = 0
  for (let seed = 1; seed <= 6; seed++) {
    const mem = new MemoryDevice(16 * KiB)
    await mem.write(0, pattern(30, 16 * KiB))
    const store = await SnapshotStore.format(new SlowDevice(new MemoryDevice(256 * KiB), seed + 100), { chunkSize: CS })
    const vol = new OriginDevice(new SlowDevice(mem, seed), store)
    const model = mem.toBuffer()
    await vol.createSnapshot('s')
    const snap = vol.snapshot('s')
    const reads: Promise<void>[] = []
    const writes: Promise<void>[] = []
    for (let c = 0; c < 4; c++) {
      writes.push(vol.write(c * CS + 10, pattern(40 + c, 2000)))
      // Reads starting at every moment of the copy and the origin write that follows it.
      for (let delay = 0; delay < 40; delay++) {
        reads.push(turns(delay).then(async () => {
          const got = await snap.read(c * CS, CS)
          if (!got.equals(model.subarray(c * CS, (c + 1) * CS))) t.fail(`seed ${seed}, chunk ${c}, read after ${delay} turns saw new bytes`)
          checked++
        }))
      }
    }
    await Promise.all([...writes, ...reads])
    t.ok((await mem.read(0, 16 * KiB)).equals(Buffer.concat([0, 1, 2, 3].map((c) => Buffer.concat([model.subarray(c * CS, c * CS + 10), pattern(40 + c, 2000), model.subarray(c * CS + 2010, (c + 1) * CS)])))))
  }
  t.equal(checked, 6 * 4 * 40, 'every read saw the snapshot-time bytes')
})

t.test('store full: the oldest snapshot is invalidated and the origin write proceeds', async (t) => {
  // 32 KiB store of 4 KiB chunks: 4 data chunks.
  const { vol, origin, store, events } = await makeVolume({ originSize: 64 * KiB, storeSize: 32 * KiB, chunkSize: CS, fill: 50 })
  t.equal(store.layout.chunkCount, 4)
  const m0 = origin.toBuffer()
  await vol.createSnapshot('old')
  await vol.write(0, pattern(51, 3 * CS)) // chunks 0-2 copied for old
  const m1 = origin.toBuffer()
  await vol.createSnapshot('new')
  await vol.write(10 * CS, pattern(52, CS)) // chunk 10, shared by both: store now full
  t.equal(store.usage().used, 4)
  t.ok((await vol.snapshot('old').read(0, 64 * KiB)).equals(m0))
  await vol.write(0, pattern(53, 10)) // new needs chunk 0: no room
  t.strictSame(events.map((e) => [e.kind, e.layer, e.message]), [
    ['snapshot-invalidated', 'snapshot', 'snapshot store full (4 chunks): snapshot old invalidated, 3 chunks freed'],
  ])
  t.strictSame(vol.listSnapshots().map((s) => [s.name, s.state]), [['old', 'invalid'], ['new', 'live']])
  t.throws(() => vol.snapshot('old'), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot old is invalid' })
  t.ok((await vol.snapshot('new').read(0, 64 * KiB)).equals(m1), 'the younger snapshot is exact')
  t.ok((await vol.read(0, 10)).equals(pattern(53, 10)), 'the origin write happened')
  t.equal(store.usage().used, 2, 'chunk 10 (now new only) and chunk 0 for new')
  await vol.deleteSnapshot('old')
  await vol.whenIdle()
  t.strictSame(vol.listSnapshots().map((s) => s.name), ['new'])
})

t.test('store full with whenFull reject: the write fails and names the snapshot', async (t) => {
  const { vol, origin, store } = await makeVolume({ originSize: 64 * KiB, storeSize: 32 * KiB, chunkSize: CS, fill: 60, whenFull: 'reject' })
  await vol.createSnapshot('keep')
  await vol.write(0, pattern(61, 4 * CS))
  const before = origin.toBuffer()
  await t.rejects(vol.write(5 * CS, pattern(62, 1)), {
    code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot store full (4 chunks): no room to keep snapshot keep',
  })
  t.ok(origin.toBuffer().equals(before), 'the origin is unchanged')
  t.equal(store.usage().used, 4)
  await vol.write(CS, pattern(63, 1))
  t.pass('a chunk already copied is still writable')
})

t.test('reopen from real files: every snapshot as it was, deletes resumed', async (t) => {
  const dir = t.testdir({})
  const originFile = await ImageFile.create(join(dir, 'origin.img'), 64 * KiB)
  const storeFile = await ImageFile.create(join(dir, 'store.img'), 256 * KiB)
  const store = await SnapshotStore.format(storeFile, { chunkSize: CS })
  const vol = new OriginDevice(originFile, store, { now: () => 1764900000000 })
  await vol.write(0, pattern(70, 64 * KiB))
  const m0 = Buffer.from(await vol.read(0, 64 * KiB))
  await vol.createSnapshot('one')
  await vol.write(CS, pattern(71, 2 * CS))
  const m1 = Buffer.from(await vol.read(0, 64 * KiB))
  await vol.createSnapshot('two')
  await vol.write(0, pattern(72, 5 * CS))
  await vol.createSnapshot('three')
  await vol.write(9 * CS, pattern(73, 1))
  await vol.flush()
  await vol.close()

  const o2 = await ImageFile.open(join(dir, 'origin.img'))
  const s2 = await ImageFile.open(join(dir, 'store.img'))
  const vol2 = new OriginDevice(o2, await SnapshotStore.open(s2))
  t.strictSame(vol2.listSnapshots(), [
    { id: 0, name: 'one', created: 1764900000000, seq: 0, state: 'live' },
    { id: 1, name: 'two', created: 1764900000000, seq: 1, state: 'live' },
    { id: 2, name: 'three', created: 1764900000000, seq: 2, state: 'live' },
  ])
  t.ok((await vol2.snapshot('one').read(0, 64 * KiB)).equals(m0))
  t.ok((await vol2.snapshot('two').read(0, 64 * KiB)).equals(m1))
  await vol2.deleteSnapshot('one')
  await vol2.close()
  const vol3 = new OriginDevice(await ImageFile.open(join(dir, 'origin.img')), await SnapshotStore.open(await ImageFile.open(join(dir, 'store.img'))))
  t.notOk(vol3.listSnapshots().some((s) => s.name === 'one'), 'the delete finished before close')
  t.ok((await vol3.snapshot('two').read(0, 64 * KiB)).equals(m1))
  await vol3.close()
})

t.test('refusals carry exact codes', async (t) => {
  const { vol } = await makeVolume({ originSize: 16 * KiB, storeSize: 64 * KiB, chunkSize: CS })
  await vol.createSnapshot('x')
  await t.rejects(vol.createSnapshot('x'), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot x exists already' })
  await t.rejects(vol.createSnapshot(''), { code: 'VOLUME_SNAPSHOT' })
  await t.rejects(vol.createSnapshot('n'.repeat(65)), { code: 'VOLUME_SNAPSHOT' })
  await t.rejects(vol.deleteSnapshot('nope'), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: no snapshot nope' })
  t.throws(() => vol.snapshot('nope'), { code: 'VOLUME_SNAPSHOT' })
  const snap = vol.snapshot('x')
  await t.rejects(snap.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_READONLY' })
  await t.rejects(snap.read(16 * KiB, 1), { code: 'BLOCKDEV_RANGE' })
  t.equal(snap.readOnly, true)
  t.equal(snap.size, 16 * KiB)
  await vol.deleteSnapshot('x')
  await t.rejects(snap.read(0, 1), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot x is deleting: its content is gone' })
  await vol.whenIdle()
  await t.rejects(snap.read(0, 1), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot x is deleted: its content is gone' })
  for (let i = 0; i < 64; i++) await vol.createSnapshot(`s${i}`)
  await t.rejects(vol.createSnapshot('s64'), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: no room for snapshot s64: the store holds 64' })
  t.strictSame(vol.status(), {
    kind: 'snapshot', size: 16 * KiB, degraded: false, failed: false,
    members: [{ index: 0, state: 'ok' }, { index: 1, state: 'ok' }],
  })
  t.equal(vol.kind, 'snapshot')
  t.equal(vol.members.length, 2)
  await vol.close()
  await t.rejects(vol.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(vol.createSnapshot('late'), { code: 'BLOCKDEV_CLOSED' })
})
