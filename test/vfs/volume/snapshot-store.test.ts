import t from 'tap'
import { crc32 } from 'node:zlib'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { VolumeError } from '../../../vfs/volume/layer.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import {
  decodeMapEntry, decodeTableEntry, encodeHeader, encodeMapEntry, encodeTableEntry, layoutFor, MAP_OFFSET, MAP_SLOT, TABLE_OFFSET, TABLE_SLOT,
} from '../../../vfs/volume/snapshot-format.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { makeVolume, pattern, rng, seedFrom } from './snapshot-helpers.ts'

const KiB = 1024

t.test('layout: as many chunks as fit beside their map slots', async (t) => {
  // 1 MiB of 4 KiB chunks: (1048576 - 12288) / (4096 + 32) = 251; the map ends at 20320, data at 20480, 251 chunks end at 1 MiB.
  t.strictSame(layoutFor(1024 * KiB, 4096, 512), { chunkSize: 4096, chunkCount: 251, dataOffset: 20480 })
  t.strictSame(layoutFor(1024 * 1024 * KiB, 65536, 512), { chunkSize: 65536, chunkCount: 16375, dataOffset: 589824 })
  t.strictSame(layoutFor(32 * KiB, 4096, 512), { chunkSize: 4096, chunkCount: 4, dataOffset: 16384 })
  t.throws(() => layoutFor(16 * KiB, 4096, 512), { code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: a snapshot store of 16384 bytes holds no 4096-byte chunk' })
  for (const bad of [0, 2048, 6144, 32 * 1024 * 1024, 2 ** 31, 0.5]) t.throws(() => layoutFor(1024 * KiB, bad, 512), { code: 'VOLUME_LAYOUT' }, `chunk size ${bad}`)
  t.throws(() => layoutFor(1024 * KiB, 4096, 8192), { code: 'VOLUME_LAYOUT' }, 'a chunk smaller than a sector')
})

t.test('exact bytes of the header, a table slot and a map slot', async (t) => {
  const h = encodeHeader({ chunkSize: 4096, chunkCount: 251, dataOffset: 20480 })
  t.equal(h.length, 512)
  t.equal(h.subarray(0, 32).toString('hex'), '54534e4653534e50' + '00000001' + '00001000' + '000000fb' + '00000040' + '0000000000005000')
  t.ok(h.subarray(32, 508).every((b) => b === 0))
  t.equal(h.readUInt32BE(508), crc32(h.subarray(0, 508)))
  t.equal(h.subarray(508).toString('hex'), '995484c8')

  const e = encodeTableEntry({ id: 3, name: 'nightly', created: 1764900000000, seq: 7, state: 'live' })
  t.equal(e.length, 128)
  t.equal(e.subarray(0, 23).toString('hex'), '01' + '07' + '03' + '00' + '0000019aec3cd100' + '00000007' + '6e696768746c79')
  t.equal(e.subarray(124).toString('hex'), '2231d8cb')
  t.strictSame(decodeTableEntry(e, 3), { id: 3, name: 'nightly', created: 1764900000000, seq: 7, state: 'live' })
  t.throws(() => decodeTableEntry(e, 4), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot table slot 4 is not a valid entry' })
  t.equal(decodeTableEntry(Buffer.alloc(128), 9), undefined, 'all zero: a free slot')

  const m = encodeMapEntry({ originChunk: 5, mask: 0b1010n })
  t.equal(m.toString('hex'), '0000000000000005' + '000000000000000a' + '0000000000000000' + '00000000' + '370c96ea')
  t.strictSame(decodeMapEntry(m, 0), { originChunk: 5, mask: 0b1010n })
  t.strictSame(encodeMapEntry({ originChunk: 5, mask: 0n }), Buffer.alloc(32), 'a free slot is all zero')
})

/** A store holding two snapshots and three copies, for the damage tests. */
async function populated(): Promise<MemoryDevice> {
  const v = await makeVolume({ originSize: 64 * KiB, storeSize: 128 * KiB, chunkSize: 4096, fill: 1 })
  await v.vol.createSnapshot('a')
  await v.vol.write(0, pattern(2, 8192))
  await v.vol.createSnapshot('b')
  await v.vol.write(4096, pattern(3, 100))
  return v.storeMem
}

async function damaged(at: number, bytes: Uint8Array): Promise<MemoryDevice> {
  const dev = (await populated()).clone()
  await dev.write(at, bytes)
  return dev
}

function reseal(slot: Buffer): Buffer {
  slot.writeUInt32BE(crc32(slot.subarray(0, slot.length - 4)), slot.length - 4)
  return slot
}

t.test('a damaged store is refused with an exact error', async (t) => {
  const good = await populated()
  const store = await SnapshotStore.open(good.clone())
  t.equal(store.usage().used, 3)
  t.strictSame(store.entries().map((e) => e.name), ['a', 'b'])

  const header = await good.read(0, 512)
  const slot0 = await good.read(TABLE_OFFSET, TABLE_SLOT)
  const map0 = await good.read(MAP_OFFSET, MAP_SLOT)
  const cases: [string, () => Promise<MemoryDevice>, string, string][] = [
    ['blank device', () => Promise.resolve(new MemoryDevice(128 * KiB)), 'VOLUME_NO_SUPERBLOCK', 'VOLUME_NO_SUPERBLOCK: no snapshot store header (bad magic)'],
    ['too small to hold one', () => Promise.resolve(new MemoryDevice(4096)), 'VOLUME_NO_SUPERBLOCK', 'VOLUME_NO_SUPERBLOCK: a 4096-byte device holds no snapshot store'],
    ['header bit flip', () => damaged(100, Buffer.from([1])), 'VOLUME_NO_SUPERBLOCK', 'VOLUME_NO_SUPERBLOCK: snapshot store header checksum mismatch'],
    ['version 2', () => damaged(0, reseal(Buffer.from(header).fill(2, 11, 12))), 'VOLUME_LAYOUT', 'VOLUME_LAYOUT: snapshot store version 2, expected 1'],
    ['chunk size 2 GiB', () => damaged(0, reseal(Buffer.from(header).fill(0x80, 12, 13))), 'VOLUME_LAYOUT', 'VOLUME_LAYOUT: snapshot chunk size 2147487744 is not a power of two from 4096 to 16777216 bytes'],
    ['chunk count past the device', () => damaged(0, reseal(Buffer.from(header).fill(0xff, 16, 20))), 'VOLUME_LAYOUT', 'VOLUME_LAYOUT: snapshot store header says 4294967295 chunks at 16384, a 131072-byte store holds 28 at 16384'],
    ['table slot bit flip', () => damaged(TABLE_OFFSET + TABLE_SLOT + 20, Buffer.from([0x55])), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: snapshot table slot 1 checksum mismatch'],
    ['table name length 200', () => damaged(TABLE_OFFSET, reseal(Buffer.from(slot0).fill(200, 1, 2))), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: snapshot table slot 0 is not a valid entry'],
    ['table state 9', () => damaged(TABLE_OFFSET, reseal(Buffer.from(slot0).fill(9, 0, 1))), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: snapshot table slot 0 is not a valid entry'],
    ['map slot with an empty mask', () => damaged(MAP_OFFSET, reseal(Buffer.from(map0).fill(0, 8, 16))), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: exception map slot 0 is not a valid entry'],
    ['map slot bit flip', () => damaged(MAP_OFFSET + MAP_SLOT + 9, Buffer.from([0x80])), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: exception map slot 1 checksum mismatch'],
    ['map slot naming an unknown snapshot', () => damaged(MAP_OFFSET + 5 * MAP_SLOT, encodeMapEntry({ originChunk: 9, mask: 1n << 40n })), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: exception map slot 5 names a snapshot id the table does not have'],
    ['two copies of one chunk for one snapshot', () => damaged(MAP_OFFSET + 5 * MAP_SLOT, encodeMapEntry({ originChunk: 0, mask: 1n })), 'VOLUME_SNAPSHOT', 'VOLUME_SNAPSHOT: exception map slot 5 gives a snapshot a second copy of origin chunk 0'],
  ]
  for (const [what, make, code, message] of cases) {
    await t.rejects(SnapshotStore.open(await make()), { code, message }, what)
  }
  // A table naming one snapshot twice, each slot valid on its own.
  const twin = encodeTableEntry({ id: 1, name: 'a', created: 0, seq: 9, state: 'live' })
  await t.rejects(SnapshotStore.open(await damaged(TABLE_OFFSET + TABLE_SLOT, twin)), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: snapshot table slot 1 repeats the name a' })
  // A copy of an origin chunk the origin does not have: the store belongs to a bigger origin.
  const far = await SnapshotStore.open(await damaged(MAP_OFFSET + 5 * MAP_SLOT, encodeMapEntry({ originChunk: 16, mask: 1n })))
  t.throws(() => new OriginDevice(new MemoryDevice(64 * KiB), far), {
    code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: the store holds origin chunk 16, past the end of a 65536-byte origin',
  })
})

t.test('random damage to the metadata: an exact error or a store that opens, never a crash', async (t) => {
  const seed = seedFrom('SNAPSHOT_DAMAGE_SEED')
  t.comment(`seed ${seed}`)
  const random = rng(seed)
  const good = await populated()
  const end = MAP_OFFSET + 28 * MAP_SLOT
  let refused = 0
  let opened = 0
  for (let i = 0; i < 400; i++) {
    const dev = good.clone()
    for (let n = 1 + random(4); n > 0; n--) {
      // Half the time the header or the table, half the map; a byte, a bit, or a run of garbage.
      const at = random(2) === 0 ? random(MAP_OFFSET) : MAP_OFFSET + random(end - MAP_OFFSET)
      const b = await dev.read(at, 1)
      await dev.write(at, Buffer.from([random(2) === 0 ? random(256) : (b[0] ?? 0) ^ (1 << random(8))]))
    }
    try {
      const store = await SnapshotStore.open(dev)
      t.ok(store.usage().used <= store.layout.chunkCount)
      opened++
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err
      refused++
    }
  }
  t.comment(`${refused} refused, ${opened} opened (damage that missed every used byte)`)
  t.equal(refused + opened, 400)
  t.ok(refused > 0)
})
