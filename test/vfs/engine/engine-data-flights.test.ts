/*
 * A WRITE's data blocks go to the device after it released the engine's lock (engine-vfs.ts
 * #dataPhase, data-flights.ts). A device that holds every write until told shows it: several
 * requests' data is at the device at once, and what must not see a half-written block waits for
 * it — a READ of those blocks, a second WRITE into them, a truncate of the file — while the
 * commit that makes the new extents durable waits for the data (ordered mode) and a failed data
 * write never lets them commit.
 */
import { setImmediate as turn } from 'node:timers/promises'
import t from 'tap'
import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import type { EngineVfs } from '../../../vfs/engine/fs/engine-vfs.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { FileRef } from '../../../vfs/types.ts'

const owner = { uid: 0, gid: 0 }
const BS = 4096

/** Holds every write while closed; `open` lets them go last first, so an order nobody kept shows. */
class GateDevice extends PassThroughDevice {
  closed = false
  failWrites = false
  readonly held: Array<{ offset: number; go: () => void }> = []
  override async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.closed) await new Promise<void>((go) => this.held.push({ offset, go }))
    if (this.failWrites) throw Object.assign(new Error('injected EIO'), { code: 'EIO' })
    return this.inner.write(offset, Buffer.from(data))
  }
  override close(): Promise<void> {
    return Promise.resolve()
  }
  async open(): Promise<void> {
    this.closed = false
    for (const h of this.held.splice(0).reverse()) {
      h.go()
      await turn()
    }
  }
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
}

/** Resolves once `n` writes are held (or fails the test after many turns: nothing is timed). */
async function heldAt(t: Test, gate: GateDevice, n: number): Promise<void> {
  for (let i = 0; i < 2000 && gate.held.length < n; i++) await turn()
  t.equal(gate.held.length, n, `${n} device writes held`)
}

async function setup(t: Test): Promise<{ e: EngineVfs; gate: GateDevice; mem: MemoryDevice; file: (name: string) => Promise<FileRef> }> {
  const mem = new MemoryDevice(32 * 2 ** 20)
  await makeFileSystem(mem, { zeroed: true, blockSize: BS })
  const gate = new GateDevice(mem)
  // No commit timer: the only device writes while the gate is closed are file data.
  const e = await openEngineOn(gate, { commitIntervalMs: 0 })
  const file = async (name: string): Promise<FileRef> => {
    const made = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
    await e.commit(made.ref)
    return made.ref
  }
  t.teardown(async () => {
    await gate.open()
    await e.close().catch(() => undefined)
  })
  return { e, gate, mem, file }
}

t.test('two WRITEs of two files are at the device at once: the lock is not held across the data', async (t) => {
  const { e, gate, file } = await setup(t)
  const a = await file('a')
  const b = await file('b')
  gate.closed = true
  const wa = e.write(a, 0n, Buffer.alloc(8 * BS, 0xaa), 'unstable')
  const wb = e.write(b, 0n, Buffer.alloc(8 * BS, 0xbb), 'unstable')
  await heldAt(t, gate, 2)
  t.same(e.dataWritesInFlight, { now: 2, max: 2 }, 'both requests are in their data phase')
  await gate.open()
  await Promise.all([wa, wb])
  t.equal(e.dataWritesInFlight.now, 0, 'none left in flight')
  t.ok((await e.read(a, 0n, 8 * BS)).data.equals(Buffer.alloc(8 * BS, 0xaa)), 'a reads back')
  t.ok((await e.read(b, 0n, 8 * BS)).data.equals(Buffer.alloc(8 * BS, 0xbb)), 'b reads back')
})

t.test('replies of WRITEs whose data lands out of order carry the newest size (the later reply never the older one)', async (t) => {
  const { e, gate, file } = await setup(t)
  const f = await file('f')
  gate.closed = true
  // The client's pieces of one file: a whole first part, then a short tail. The tail's data lands
  // first (the gate lets writes go last first), so the first part's reply leaves last.
  const first = e.write(f, 0n, Buffer.alloc(8 * BS, 0x11), 'unstable')
  const tail = e.write(f, BigInt(8 * BS), Buffer.alloc(7, 0x22), 'unstable')
  await heldAt(t, gate, 2)
  const order: string[] = []
  const sizes = new Map<string, bigint>()
  const note = (name: string) => (r: { after: { size: bigint } }): void => {
    order.push(name)
    sizes.set(name, r.after.size)
  }
  const done = Promise.all([first.then(note('first')), tail.then(note('tail'))])
  await gate.open()
  await done
  t.same(order, ['tail', 'first'], 'the tail was answered first')
  t.equal(sizes.get('first'), BigInt(8 * BS + 7), 'the reply that left last carries the file size after both')
  t.equal((await e.getattr(f)).size, BigInt(8 * BS + 7))
})

t.test('successive changes never get an older ctime (the sub-millisecond part of the clock wraps on its own)', async (t) => {
  const { e, file } = await setup(t)
  const f = await file('f')
  const ns = (a: { ctime: { sec: number; nsec: number } }): bigint => BigInt(a.ctime.sec) * 1_000_000_000n + BigInt(a.ctime.nsec)
  let last = 0n
  let back = 0
  for (let i = 0; i < 3000; i++) {
    const r = await e.write(f, BigInt(i % 4) * BigInt(BS), Buffer.alloc(16, i & 0xff), 'unstable')
    const now = ns(r.after)
    if (now < last) back++
    last = now
  }
  t.equal(back, 0, 'no WRITE in 3,000 got a ctime older than the one before')
})

t.test('a READ of blocks a WRITE has mapped but not yet filled waits and returns the new data', async (t) => {
  const { e, gate, file } = await setup(t)
  const f = await file('f')
  const other = await file('g')
  await e.write(other, 0n, Buffer.alloc(BS, 0x01), 'unstable')
  gate.closed = true
  const w = e.write(f, 0n, Buffer.alloc(4 * BS, 0x5a), 'unstable')
  await heldAt(t, gate, 1)
  t.equal((await e.getattr(f)).size, BigInt(4 * BS), 'the new size is visible at once')
  let answered = false
  const r = e.read(f, BigInt(BS), BS).then((res) => {
    answered = true
    return res
  })
  // Another file's read goes on meanwhile (the read lock is free).
  t.ok((await e.read(other, 0n, BS)).data.equals(Buffer.alloc(BS, 0x01)), 'a read of another file is answered while the write is held')
  await turns(50)
  t.notOk(answered, 'the READ of the blocks being written has not been answered')
  await gate.open()
  await w
  t.ok((await r).data.equals(Buffer.alloc(BS, 0x5a)), 'it returns the written bytes (not what the blocks held before)')
})

t.test('a second WRITE into the same blocks lands after the first, even when the device reorders', async (t) => {
  const { e, gate, file } = await setup(t)
  const f = await file('f')
  gate.closed = true
  const w1 = e.write(f, 0n, Buffer.alloc(2 * BS, 0x11), 'unstable')
  await heldAt(t, gate, 1)
  const w2 = e.write(f, 100n, Buffer.alloc(BS, 0x22), 'unstable')
  await turns(50)
  t.equal(gate.held.length, 1, 'the second write waits for the first (it shares its blocks)')
  await gate.open()
  await Promise.all([w1, w2])
  const want = Buffer.alloc(2 * BS, 0x11)
  want.fill(0x22, 100, 100 + BS)
  t.ok((await e.read(f, 0n, 2 * BS)).data.equals(want), 'the file holds the first write patched by the second')
})

t.test('a truncate waits for a WRITE in flight: the tail it zeroes stays zero', async (t) => {
  const { e, gate, file } = await setup(t)
  const f = await file('f')
  gate.closed = true
  const w = e.write(f, 0n, Buffer.alloc(2 * BS, 0x77), 'unstable')
  await heldAt(t, gate, 1)
  const cut = e.setattr(f, { size: 5000n })
  await turns(50)
  await gate.open()
  await Promise.all([w, cut])
  await e.setattr(f, { size: BigInt(2 * BS) })
  const back = (await e.read(f, 0n, 2 * BS)).data
  t.ok(back.subarray(0, 5000).equals(Buffer.alloc(5000, 0x77)), 'the bytes kept are the write\'s')
  t.ok(back.subarray(5000).equals(Buffer.alloc(2 * BS - 5000)), 'past the cut, zeros after growing again')
})

t.test('the commit waits for the data; a failed data write aborts before its extents can commit', async (t) => {
  const { e, gate, mem, file } = await setup(t)
  const f = await file('f')
  gate.closed = true
  const w = e.write(f, 0n, Buffer.alloc(4 * BS, 0x33), 'file_sync').then(() => undefined, (x: unknown) => x)
  await heldAt(t, gate, 1)
  // COMMIT of the file: its transaction cannot commit while the data is held.
  let committed = false
  const c = e.commit(f).then(() => (committed = true), (x: unknown) => x)
  await turns(50)
  t.notOk(committed, 'no commit while the data is still on its way')
  t.equal(gate.held.length, 1, 'nothing but the data write reached the device (no journal block)')
  gate.failWrites = true
  await gate.open()
  t.match(await w, { code: 'EIO' }, 'the WRITE fails EIO')
  t.match(await c, { code: 'EIO' }, 'the COMMIT fails EIO')
  t.notOk(committed, 'its transaction never became durable')
  t.ok(e.readOnly, 'the engine went read-only (errors=remount-ro)')
  // What is on the device: recovery finds the file as it was committed, empty.
  gate.failWrites = false
  const again = mem.clone()
  await recover(again)
  const e2 = await openEngineOn(again, { commitIntervalMs: 0 })
  t.teardown(() => e2.close())
  const { attr } = await e2.lookup(e2.root(), Buffer.from('f'))
  t.equal(attr.size, 0n, 'the size and extents of the failed write never committed')
})
