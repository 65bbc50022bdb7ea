/*
 * Issue 14 item 8: full-stripe writes must not read-modify-write. Below the engine, through its
 * own write path (UNSTABLE 1 MiB writes then COMMIT, as an NFS client streams a file), every byte
 * the RAID-5 reads from its members is counted against what it may read: the engine's own reads
 * (metadata) and, for each write it gets, the partial stripes at that write's two ends (at most a
 * row each, what the cheaper of read-modify-write and reconstruct-write needs). Whole rows read
 * nothing, so a 16 MiB file costs its end pieces only; formatted with the RAID-5's geometry
 * (s_raid_stripe_width), the allocator puts the file on row boundaries and its writes have none.
 */
import t from 'tap'
import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { RaidLayout } from '../../../vfs/engine/mkfs/raid.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { CountingDevice } from './raid5-helpers.ts'

const MiB = 2 ** 20
const UNIT = 64 * 1024
const N = 3
const ROW = (N - 1) * UNIT
const owner = { uid: 0, gid: 0 }
const FILE = 16 * MiB

/** What the engine asks of the volume: bytes it reads, and the partial-stripe bytes its writes may make the RAID-5 read. */
class Allowance extends PassThroughDevice {
  engineReads = 0
  partialRows = 0
  /** Partial rows at the ends of writes of a row or more: file data (metadata blocks are single blocks). */
  dataPartialRows = 0
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
    const partial = (offset % ROW !== 0 ? 1 : 0) + (end % ROW !== 0 && (lastRow !== firstRow || offset % ROW === 0) ? 1 : 0)
    this.partialRows += partial
    if (data.length >= ROW) this.dataPartialRows += partial
    return this.inner.write(offset, data)
  }
}

interface Streamed {
  memberReads: number
  engineReads: number
  partialRows: number
  dataPartialRows: number
  writes: number
}

/** A 16 MiB file written through the engine in 1 MiB UNSTABLE writes and committed, on a fresh RAID-5 formatted with `raid` (or none). */
async function streamFile(t: Test, raid: RaidLayout | undefined, inFlight = 1): Promise<Streamed> {
  const members = Array.from({ length: N }, () => new CountingDevice(new MemoryDevice(128 * MiB)))
  const dev = new Raid5Device(members, { unit: UNIT })
  await makeFileSystem(dev, { zeroed: true, blockSize: 4096, ...(raid === undefined ? {} : { raid }) })
  const spy = new Allowance(dev)
  const e = await openEngineOn(spy) // closes the spy and the RAID-5 at the end
  // A few small files first, so the big one's natural place (the first free block) is inside a row.
  for (const name of ['a', 'b', 'c']) {
    const small = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
    await e.write(small.ref, 0n, Buffer.alloc(3 * 4096, 1), 'unstable')
    await e.commit(small.ref)
  }
  const made = await e.create(e.root(), Buffer.from('big'), { how: 'guarded', attr: {} }, owner)
  await e.commit(made.ref)
  const before = { members: members.reduce((sum, m) => sum + m.readBytes, 0), engine: spy.engineReads, rows: spy.partialRows, dataRows: spy.dataPartialRows, writes: spy.writes }
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + 3) % 251
  // inFlight writes at once, as an NFS client streams (they may reach the allocator out of order).
  const offsets = Array.from({ length: FILE / MiB }, (_, i) => i * MiB)
  for (let i = 0; i < offsets.length; i += inFlight) {
    await Promise.all(offsets.slice(i, i + inFlight).map((off) => e.write(made.ref, BigInt(off), chunk, 'unstable')))
  }
  await e.commit(made.ref)
  const out = {
    memberReads: members.reduce((sum, m) => sum + m.readBytes, 0) - before.members,
    engineReads: spy.engineReads - before.engine,
    partialRows: spy.partialRows - before.rows,
    dataPartialRows: spy.dataPartialRows - before.dataRows,
    writes: spy.writes - before.writes,
  }
  const back = await e.read(made.ref, BigInt(5 * MiB), MiB)
  t.ok(Buffer.from(back.data).equals(chunk), 'the file reads back')
  await e.close()
  t.comment(`${FILE / MiB} MiB written in ${out.writes} volume writes: members read ${out.memberReads} bytes; engine reads ${out.engineReads}, ${out.partialRows} partial rows (${out.dataPartialRows} at the ends of data writes)`)
  return out
}

t.test('a sequential file write through the engine on RAID-5 reads nothing for its whole stripes', async (t) => {
  const r = await streamFile(t, undefined)
  const allowed = r.engineReads + r.partialRows * ROW
  t.ok(r.memberReads <= allowed, `member reads (${r.memberReads}) within the engine's reads and the partial rows (${allowed})`)
  // Without the RAID geometry the file's data is not row-aligned, so each request has two partial
  // rows; read-modify-write of every stripe would read the file's size.
  t.ok(r.memberReads < FILE / 8, `and far below the file: ${r.memberReads} bytes read for ${FILE} written`)
})

t.test('formatted with the RAID-5 geometry, the file data is row-aligned: its writes read nothing', async (t) => {
  const plain = await streamFile(t, undefined)
  const r = await streamFile(t, { unit: UNIT, dataUnits: N - 1 })
  t.equal(r.dataPartialRows, 0, 'every 1 MiB data write starts and ends on a row boundary')
  t.ok(plain.dataPartialRows > 0, `where without the geometry ${plain.dataPartialRows} data writes ended inside a row`)
  // What is left to read is for metadata and the journal: single blocks inside rows.
  const allowed = r.engineReads + (r.partialRows - r.dataPartialRows) * ROW
  t.ok(r.memberReads <= allowed, `member reads (${r.memberReads}) within the engine's reads and the metadata's partial rows (${allowed})`)
  t.ok(r.memberReads < plain.memberReads, `fewer member reads than without the geometry (${r.memberReads} < ${plain.memberReads})`)
})

t.test('the same with 16 writes in flight: still no data write ends inside a row', async (t) => {
  const r = await streamFile(t, { unit: UNIT, dataUnits: N - 1 }, 16)
  t.equal(r.dataPartialRows, 0, 'every data write on row boundaries')
  t.ok(r.memberReads <= r.engineReads + (r.partialRows - r.dataPartialRows) * ROW, `member reads (${r.memberReads}) only for metadata`)
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
