/*
 * Issue 14 item 8: where a sequential write through the engine on a RAID-5 waits. Below the
 * engine, on a volume as `tsnfs volume create` makes it (intent bitmap, members with their
 * superblocks), a file is streamed in 1 MiB UNSTABLE writes, several in flight, and committed;
 * each disk counts what it is asked: data writes, writes into its reserved area (superblock and
 * intent bitmap), flushes, reads, and how many writes are in flight on all disks at once. The
 * claims: whole rows read nothing, the three members of a run are written at once (not one after
 * another), several requests' data writes are in flight together (not one request at a time), and the flushes are the engine's own (a COMMIT's, each once per member) plus a few
 * for the bitmap as the stream enters new regions, not one per write.
 */
import { setImmediate as turn } from 'node:timers/promises'
import t from 'tap'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { openVolumeOn } from '../../../vfs/volume/open-volume.ts'

const MiB = 2 ** 20
const UNIT = 64 * 1024
const N = 3
const MEMBER_DATA = 96 * MiB
const REGION = 8 * MiB
const FILE = 48 * MiB
const IN_FLIGHT = 8
const owner = { uid: 0, gid: 0 }

/** Shared by the disks of one volume: writes in flight on any of them now, and the most seen. */
class InFlight {
  now = 0
  max = 0
}

/** Counts what one disk is asked; each write yields a turn first, so writes issued together overlap. */
class DiskCounter extends PassThroughDevice {
  dataWrites = 0
  reservedWrites = 0
  flushes = 0
  readBytes = 0
  readonly #flight: InFlight
  constructor(inner: BlockDevice, flight: InFlight) {
    super(inner)
    this.#flight = flight
  }
  override read(offset: number, length: number): Promise<Buffer> {
    this.readBytes += length
    return this.inner.read(offset, length)
  }
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.readBytes += target.length
    return this.inner.readInto(offset, target)
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    return this.#counted(offset, () => this.inner.write(offset, data))
  }
  writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    return this.#counted(offset, () => this.inner.write(offset, Buffer.concat(chunks)))
  }
  override async flush(): Promise<void> {
    this.flushes++
    await this.inner.flush()
  }
  override close(): Promise<void> {
    return Promise.resolve() // the memory stays for the next open; the test drops it
  }
  async #counted(offset: number, io: () => Promise<void>): Promise<void> {
    if (offset >= MEMBER_RESERVED) this.dataWrites++
    else this.reservedWrites++
    this.#flight.now++
    this.#flight.max = Math.max(this.#flight.max, this.#flight.now)
    try {
      await turn()
      await io()
    } finally {
      this.#flight.now--
    }
  }
}

interface Counts {
  dataWrites: number
  reservedWrites: number
  flushes: number
  readBytes: number
}

function sum(disks: readonly DiskCounter[]): Counts {
  return {
    dataWrites: disks.reduce((s, d) => s + d.dataWrites, 0),
    reservedWrites: disks.reduce((s, d) => s + d.reservedWrites, 0),
    flushes: disks.reduce((s, d) => s + d.flushes, 0),
    readBytes: disks.reduce((s, d) => s + d.readBytes, 0),
  }
}

function minus(a: Counts, b: Counts): Counts {
  return { dataWrites: a.dataWrites - b.dataWrites, reservedWrites: a.reservedWrites - b.reservedWrites, flushes: a.flushes - b.flushes, readBytes: a.readBytes - b.readBytes }
}

t.test('a streamed file on a created RAID-5: no data reads, members written together, flushes per region and COMMIT, not per write', async (t) => {
  const flight = new InFlight()
  const mems = Array.from({ length: N }, () => new MemoryDevice(MEMBER_RESERVED + MEMBER_DATA))
  const disks = mems.map((m) => new DiskCounter(m, flight))
  await createVolume('r5', 'raid5', disks.map((dev, i) => ({ path: `m${i}`, dev })), { force: true, regionSize: REGION })
  const v = await openVolumeOn(disks.map((dev, i) => ({ path: `m${i}`, dev })))
  await makeFileSystem(v.device, { zeroed: true, blockSize: 4096, raid: { unit: UNIT, dataUnits: N - 1 } })
  // No commit timer: the flushes counted are the bitmap's and the COMMIT's, whatever the machine's pace.
  const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
  t.teardown(() => e.close().then(() => v.close()))
  const made = await e.create(e.root(), Buffer.from('big'), { how: 'guarded', attr: {} }, owner)
  await e.commit(made.ref)
  await v.device.flush()
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + 3) % 251
  flight.max = 0
  const before = sum(disks)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < FILE) {
      const at = next
      next += MiB
      await e.write(made.ref, BigInt(at), chunk, 'unstable')
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const streamed = minus(sum(disks), before)
  const maxInFlight = flight.max
  const flights = e.dataWritesInFlight
  await e.commit(made.ref)
  const atCommit = minus(minus(sum(disks), before), streamed)
  t.comment(`stream of ${FILE / MiB} MiB in 1 MiB writes, ${IN_FLIGHT} in flight: ${JSON.stringify(streamed)}, at most ${maxInFlight} disk writes in flight`)
  t.comment(`the COMMIT: ${JSON.stringify(atCommit)}`)

  // What is read is the metadata's (bitmaps, extent tree, inode: single blocks inside rows), never
  // the data's: a read-modify-write of the file's stripes would read half its size.
  t.ok(streamed.readBytes <= 16 * 4096, `the stream reads only metadata blocks from the members (${streamed.readBytes} bytes)`)
  // Each 1 MiB write is 8 whole rows: one write per member. With the engine's metadata writes
  // beside, never more than a few more.
  t.ok(streamed.dataWrites >= N * (FILE / MiB), `at least one data write per member per request (${streamed.dataWrites})`)
  // The three members of a run are written at once (one writev each, issued together), and the
  // requests overlap at the volume: the engine writes a request's data blocks after releasing its
  // write lock (engine-vfs.ts #dataPhase). While it held the lock across the device write, 8
  // requests in flight at the client gave at most 6 member writes in flight here (2 requests).
  t.ok(maxInFlight >= N, `the members of a run are written together: ${maxInFlight} disk writes in flight at once`)
  t.ok(flights.max >= IN_FLIGHT / 2, `requests overlap at the volume: ${flights.max} writes in their data phase at once`)
  t.ok(maxInFlight > 2 * N, `more than two requests' member writes in flight at once (${maxInFlight})`)
  // The stream enters FILE / REGION regions; each costs a bitmap write per member (set ahead, in
  // the background) and a flush of each member (before it, an ordering flush after a lazy clear at
  // most): a few per region, never one per request.
  const regions = FILE / REGION
  t.equal(streamed.flushes % N, 0, `every member flushed alike during the stream (${streamed.flushes})`)
  t.ok(streamed.flushes / N <= 2 * regions, `flushes of each member during the stream: ${streamed.flushes / N}, for ${regions} regions entered and ${FILE / MiB} requests`)
  t.ok(streamed.reservedWrites / N <= 2 * regions, `bitmap writes of each member during the stream: ${streamed.reservedWrites / N}`)
  t.ok(atCommit.flushes > 0 && atCommit.flushes % N === 0, `the COMMIT flushes every member alike: ${atCommit.flushes}`)
  // The journal commit's two flushes (before and after its commit block), and the bitmap's.
  t.ok(atCommit.flushes / N <= 3, `at most three flushes of each member for the COMMIT (${atCommit.flushes / N})`)
  const back = await e.read(made.ref, BigInt(17 * MiB), MiB)
  t.ok(Buffer.from(back.data).equals(chunk), 'the file reads back')
})
