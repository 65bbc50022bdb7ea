/*
 * Issue 14 item 8: full-stripe writes must not read-modify-write. Below the engine, through its
 * own write path (UNSTABLE 1 MiB writes then COMMIT, as an NFS client streams a file), every byte
 * the RAID-5 reads from its members is counted against what it may read: the engine's own reads
 * (metadata) and, for each write it gets, the partial stripes at that write's two ends (at most a
 * row each, what the cheaper of read-modify-write and reconstruct-write needs). Whole rows read
 * nothing, so a 16 MiB file costs its end pieces only.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { CountingDevice } from './raid5-helpers.ts'

const MiB = 2 ** 20
const UNIT = 64 * 1024
const N = 3
const ROW = (N - 1) * UNIT
const owner = { uid: 0, gid: 0 }

/** What the engine asks of the volume: bytes it reads, and the partial-stripe bytes its writes may make the RAID-5 read. */
class Allowance extends PassThroughDevice {
  engineReads = 0
  partialRows = 0
  writes = 0
  override read(offset: number, length: number): Promise<Buffer> {
    this.engineReads += length
    return this.inner.read(offset, length)
  }
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.engineReads += target.length
    return this.inner.readInto(offset, target)
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    this.writes++
    const end = offset + data.length
    const firstRow = Math.floor(offset / ROW)
    const lastRow = Math.floor((end - 1) / ROW)
    if (offset % ROW !== 0) this.partialRows++
    if (end % ROW !== 0 && (lastRow !== firstRow || offset % ROW === 0)) this.partialRows++
    return this.inner.write(offset, data)
  }
}

t.test('a sequential file write through the engine on RAID-5 reads nothing for its whole stripes', async (t) => {
  const members = Array.from({ length: N }, () => new CountingDevice(new MemoryDevice(128 * MiB)))
  const raid = new Raid5Device(members, { unit: UNIT })
  await makeFileSystem(raid, { zeroed: true, blockSize: 4096 })
  const spy = new Allowance(raid)
  const e = await openEngineOn(spy) // closes the spy and the RAID-5 at the end
  const made = await e.create(e.root(), Buffer.from('big'), { how: 'guarded', attr: {} }, owner)
  await e.commit(made.ref)
  const before = { members: members.reduce((sum, m) => sum + m.readBytes, 0), engine: spy.engineReads, rows: spy.partialRows }
  const FILE = 16 * MiB
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + 3) % 251
  for (let off = 0; off < FILE; off += MiB) await e.write(made.ref, BigInt(off), chunk, 'unstable')
  await e.commit(made.ref)
  const memberReads = members.reduce((sum, m) => sum + m.readBytes, 0) - before.members
  const engineReads = spy.engineReads - before.engine
  const partialRows = spy.partialRows - before.rows
  const allowed = engineReads + partialRows * ROW
  t.comment(`${FILE / MiB} MiB written in ${spy.writes} volume writes: members read ${memberReads} bytes; engine reads ${engineReads}, ${partialRows} partial rows`)
  t.ok(memberReads <= allowed, `member reads (${memberReads}) within the engine's reads and the partial rows (${allowed})`)
  // The file's data is not row-aligned (the engine's allocator knows no stripes), so each request
  // has two partial rows; read-modify-write of every stripe would read the file's size.
  t.ok(memberReads < FILE / 8, `and far below the file: ${memberReads} bytes read for ${FILE} written`)
  const back = await e.read(made.ref, BigInt(5 * MiB), MiB)
  t.ok(Buffer.from(back.data).equals(chunk), 'the file reads back')
  await e.close()
})

t.test('whole stripes in a row: one write per member, nothing read, parity exact; the same degraded', async (t) => {
  const unit = 1024
  const row = (N - 1) * unit
  const members = Array.from({ length: N }, () => new CountingDevice(new MemoryDevice(16 * unit)))
  const raid = new Raid5Device(members, { unit })
  const data = Buffer.alloc(4 * row + 100)
  for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) % 251
  // [row + 50, 5 row + 150): stripe 1 from byte 50 (both data units and parity: 3 writes), stripes
  // 2 … 4 whole (one write per member: 3), stripe 5's first 150 bytes (a data unit and parity: 2).
  await raid.write(row + 50, data)
  t.equal(members.reduce((sum, m) => sum + m.writes, 0), 8, 'the three whole stripes cost one write per member')
  t.ok(await raid.read(row + 50, data.length).then((b) => b.equals(data)), 'reads back')
  // Stripe 3 (parity on member 3 - 1 - 3 % 3 = 2): its parity is the XOR of its data units.
  const s3 = await Promise.all(members.map((m) => m.read(3 * unit, unit)))
  const xor = Buffer.alloc(unit)
  for (let i = 0; i < unit; i++) xor[i] = (s3[0]?.[i] ?? 0) ^ (s3[1]?.[i] ?? 0)
  t.ok(xor.equals(s3[2] ?? Buffer.alloc(0)), 'parity of a stripe written in the run')

  raid.fail(1)
  const before = members.map((m) => m.reads)
  const again = Buffer.alloc(3 * row, 0x5a)
  await raid.write(8 * row, again)
  t.strictSame(members.map((m, i) => m.reads - (before[i] ?? 0)), [0, 0, 0], 'a degraded run reads nothing either')
  t.ok((await raid.read(8 * row, again.length)).equals(again), 'and reads back, member 1 reconstructed')
  await raid.close()
})
