import t from 'tap'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { pattern } from './snapshot-helpers.ts'

const KiB = 1024
const CS = 4096

async function faulty(): Promise<{ vol: OriginDevice; origin: MemoryDevice; originFault: FaultDevice; storeFault: FaultDevice; storeMem: MemoryDevice; events: VolumeEvent[] }> {
  const origin = new MemoryDevice(32 * KiB)
  await origin.write(0, pattern(1, 32 * KiB))
  const storeMem = new MemoryDevice(128 * KiB)
  const storeFault = new FaultDevice(storeMem)
  const originFault = new FaultDevice(origin)
  const events: VolumeEvent[] = []
  const vol = new OriginDevice(originFault, await SnapshotStore.format(storeFault, { chunkSize: CS }), { onEvent: (e) => events.push(e) })
  return { vol, origin, originFault, storeFault, storeMem, events }
}

t.test('an origin read error during a copy fails that write only; the chunk is not lost', async (t) => {
  const { vol, origin, originFault } = await faulty()
  const model = origin.toBuffer()
  await vol.createSnapshot('s')
  originFault.inject({ kind: 'eio', ops: ['read'], offset: 2 * CS, length: 1 })
  await t.rejects(vol.write(2 * CS, pattern(2, 10)), { code: 'EIO' })
  t.equal(vol.store.usage().used, 0, 'the chunk taken for the copy went back')
  t.ok(origin.toBuffer().equals(model), 'the origin was not written')
  originFault.heal()
  await vol.write(2 * CS, pattern(2, 10))
  t.equal(vol.store.usage().used, 1)
  t.ok((await vol.snapshot('s').read(0, 32 * KiB)).equals(model))
  t.equal(vol.status().degraded, false)
})

t.test('a store write error fails the write, marks the store failed, and refuses writes that need a copy', async (t) => {
  const { vol, origin, storeFault, storeMem, events } = await faulty()
  await vol.write(0, pattern(3, CS))
  const model = origin.toBuffer()
  await vol.createSnapshot('s')
  await vol.write(CS, pattern(4, 10)) // one copy made while the store is well
  storeFault.inject({ kind: 'eio', ops: ['write'] })
  await t.rejects(vol.write(3 * CS, pattern(5, 10)), { code: 'EIO' })
  t.ok((await vol.read(3 * CS, 10)).equals(model.subarray(3 * CS, 3 * CS + 10)), 'not written')
  storeFault.heal()
  await t.rejects(vol.write(4 * CS, pattern(6, 10)), {
    code: 'VOLUME_FAILED',
    message: 'VOLUME_FAILED: snapshot store failed (EIO: write of 4096 bytes at 20480: injected I/O error): a write to origin chunk 4, which a snapshot still needs, is refused',
  })
  await vol.write(CS + 20, pattern(7, 10))
  t.pass('a chunk every snapshot has copied is still written')
  t.ok((await vol.snapshot('s').read(0, 32 * KiB)).equals(model), 'the snapshot still reads exactly')
  t.strictSame(vol.status().members[1], { index: 1, state: 'failed', reason: 'EIO: write of 4096 bytes at 20480: injected I/O error' })
  t.equal(vol.status().degraded, true)
  t.strictSame(events.map((e) => [e.kind, e.member]), [['member-failed', 1]])
  // A restart on the healed store: the snapshot and its copy are there, and writes need copies again.
  const again = new OriginDevice(origin.clone(), await SnapshotStore.open(storeMem.clone()))
  await again.write(4 * CS, pattern(6, 10))
  t.ok((await again.snapshot('s').read(0, 32 * KiB)).equals(model))
  t.equal(again.store.usage().used, 2)
})

t.test('a store flush error after the map slot write: the write fails, a reopen finds one consistent copy', async (t) => {
  const { vol, origin, storeFault, storeMem } = await faulty()
  const model = origin.toBuffer()
  await vol.createSnapshot('s')
  // A copy flushes twice: after its data, after its map slot. Fail the second.
  storeFault.armAfter(4, { kind: 'eio', ops: ['flush'] })
  await t.rejects(vol.write(5 * CS, pattern(8, 10)), { code: 'EIO' })
  t.ok(origin.toBuffer().equals(model), 'the origin was not written')
  storeFault.heal()
  const again = new OriginDevice(origin.clone(), await SnapshotStore.open(storeMem.clone()))
  t.ok((await again.snapshot('s').read(0, 32 * KiB)).equals(model))
  await again.write(5 * CS, pattern(8, 10))
  t.ok((await again.snapshot('s').read(0, 32 * KiB)).equals(model))
  t.ok(again.store.usage().used <= 1, `${again.store.usage().used} chunk used`)
})

t.test('a background delete that meets a store error reports it through whenIdle', async (t) => {
  const { vol, storeFault } = await faulty()
  await vol.createSnapshot('s')
  await vol.write(0, pattern(9, 2 * CS))
  storeFault.armAfter(2, { kind: 'eio', ops: ['write'] })
  await vol.deleteSnapshot('s')
  await t.rejects(vol.whenIdle(), { code: 'EIO' })
  await vol.whenIdle()
  t.pass('the error is reported once')
  t.equal(vol.listSnapshots()[0]?.state, 'deleting', 'still marked: a reopen resumes it')
})
