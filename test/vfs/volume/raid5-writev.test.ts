/*
 * A RAID-5 run of whole stripes goes to each member as one writev of the data units, straight
 * from the caller's buffer, and the parity (raid5/write-path.ts writeFullRun). Here: ImageFile.writev and
 * PartitionDevice.writev write exactly the bytes of their chunks, refuse what write refuses, and
 * a RAID-5 over image files (writev) leaves every member byte-identical to one over memory
 * devices (no writev: the units copied together), for aligned and unaligned client data.
 */
import t from 'tap'
import { join } from 'node:path'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { pattern } from './raid5-helpers.ts'

const UNIT = 4096
const STRIPES = 16
const RESERVED = 8192

t.test('ImageFile.writev: the chunks back to back; range, read-only and empty chunks', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'img')
  const img = await ImageFile.create(path, 8192)
  t.teardown(() => img.close())
  await img.writev(1000, [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh'), new Uint8Array([0x21])])
  t.equal((await img.read(999, 11)).toString('latin1'), '\0abcdefgh!\0')
  await t.rejects(img.writev(8190, [Buffer.alloc(2), Buffer.alloc(1)]), { code: 'BLOCKDEV_RANGE' })
  await img.writev(0, [])
  const ro = await ImageFile.open(path, { readOnly: true })
  t.teardown(() => ro.close())
  await t.rejects(ro.writev(0, [Buffer.alloc(1)]), { code: 'BLOCKDEV_READONLY' })
})

t.test('PartitionDevice.writev: shifted by the partition offset; write of the joined chunks where the device has no writev', async (t) => {
  const dir = t.testdir()
  const img = await ImageFile.create(join(dir, 'img'), 4 * 512)
  const onFile = new PartitionDevice(img, 512, 2 * 512)
  t.teardown(() => onFile.close())
  await onFile.writev(10, [Buffer.from('xy'), Buffer.from('z')])
  t.equal((await img.read(522, 3)).toString('latin1'), 'xyz')
  await t.rejects(onFile.writev(1023, [Buffer.alloc(1), Buffer.alloc(1)]), { code: 'BLOCKDEV_RANGE' })
  const mem = new MemoryDevice(4 * 512)
  const onMem = new PartitionDevice(mem, 1024, 512)
  await onMem.writev(0, [Buffer.from('pq'), Buffer.from('r')])
  t.equal((await mem.read(1024, 3)).toString('latin1'), 'pqr')
  await onMem.close()
  await t.rejects(onMem.writev(0, [Buffer.alloc(1)]), { code: 'BLOCKDEV_CLOSED' })
})

t.test('RAID-5 runs through writev leave the members byte-identical to the copying path', async (t) => {
  const dir = t.testdir()
  const files: BlockDevice[] = []
  for (let i = 0; i < 3; i++) files.push(new PartitionDevice(await ImageFile.create(join(dir, `m${i}`), RESERVED + STRIPES * UNIT), RESERVED, STRIPES * UNIT))
  const mems: BlockDevice[] = [0, 1, 2].map(() => new MemoryDevice(STRIPES * UNIT))
  t.ok(files.every((d) => d.writev !== undefined) && mems.every((d) => d.writev === undefined), 'one side writev, the other not')
  const onFiles = new Raid5Device(files, { unit: UNIT })
  const onMems = new Raid5Device(mems, { unit: UNIT })
  t.teardown(() => onFiles.close())
  const row = 2 * UNIT
  // Whole rows (a run of 4), a run from an odd offset inside a larger buffer (unaligned data),
  // a run with partial stripes at both ends, and a run over what the first wrote.
  const big = pattern(8 * row + 3, 7)
  const writes: [number, Buffer][] = [
    [0, pattern(4 * row, 1)],
    [4 * row, big.subarray(3, 3 + 3 * row)],
    [7 * row + 100, pattern(5 * row, 3)],
    [row, pattern(2 * row, 4)],
  ]
  t.not(writes[1]![1].byteOffset % 4, 0, 'the second write\'s data is not 4-byte aligned')
  for (const [at, data] of writes) {
    await onFiles.write(at, data)
    await onMems.write(at, data)
  }
  for (let i = 0; i < 3; i++) t.ok((await files[i]!.read(0, STRIPES * UNIT)).equals(await mems[i]!.read(0, STRIPES * UNIT)), `member ${i} identical`)
  t.equal((await onFiles.scrub()).mismatches, 0, 'parity right everywhere')
  onFiles.fail(1)
  const expect = await onMems.read(0, onMems.size)
  t.ok((await onFiles.read(0, onFiles.size)).equals(expect), 'and the volume reconstructs every byte without member 1')
})

t.test('RAID-5 runs in flight together, their parity in kept buffers, each keep their own parity', async (t) => {
  // The parity of a run is computed into a buffer handed back once every member write of the run
  // has settled, then taken by the next run: one given back early would carry another run's
  // parity to disk. Many runs at once on image files (writes that really wait) with distinct data.
  const dir = t.testdir()
  const stripes = 64
  const files: BlockDevice[] = []
  for (let i = 0; i < 3; i++) files.push(new PartitionDevice(await ImageFile.create(join(dir, `m${i}`), RESERVED + stripes * UNIT), RESERVED, stripes * UNIT))
  const vol = new Raid5Device(files, { unit: UNIT })
  t.teardown(() => vol.close())
  const run = 4 * 2 * UNIT
  const datas = Array.from({ length: stripes / 4 }, (_, i) => pattern(run, 100 + i))
  await Promise.all(datas.map((d, i) => vol.write(i * run, d)))
  // Again over the same stripes, so every run takes a buffer another run filled before.
  const again = datas.map((_, i) => pattern(run, 200 + i))
  await Promise.all(again.map((d, i) => vol.write(i * run, d)))
  t.equal((await vol.scrub()).mismatches, 0, 'parity right everywhere')
  vol.fail(0)
  t.ok((await vol.read(0, vol.size)).equals(Buffer.concat(again)), 'every byte rebuilt from the others without member 0')
})
