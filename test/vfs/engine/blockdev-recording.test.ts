import t from 'tap'
import { randomInt } from 'node:crypto'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice, sectorsTouched } from '../../../vfs/engine/blockdev/recording-device.ts'

const fill = (n: number, byte: number): Buffer => Buffer.alloc(n, byte)

async function sequentialLog(): Promise<{ base: MemoryDevice; rec: RecordingDevice; mem: MemoryDevice }> {
  const mem = new MemoryDevice(16384)
  const base = mem.clone()
  const rec = new RecordingDevice(mem)
  await rec.write(0, fill(512, 1)) // w0
  await rec.write(512, fill(512, 2)) // w1
  await rec.flush() // F1
  await rec.write(1024, fill(2048, 3)) // w2: four sectors
  await rec.write(0, fill(512, 4)) // w3: overwrites w0
  await rec.flush() // F2
  await rec.write(4096, fill(100, 5)) // w4: inside one sector
  return { base, rec, mem }
}

t.test('logs writes and flushes and passes everything through', async (t) => {
  const { rec, mem } = await sequentialLog()
  t.equal(rec.size, 16384)
  t.equal(rec.sectorSize, 512)
  t.equal(rec.readOnly, false)
  t.equal(rec.writes.length, 5)
  t.equal(rec.flushes.length, 2)
  t.strictSame(rec.writes.map((w) => w.offset), [0, 512, 1024, 0, 4096])
  t.strictSame(await rec.read(0, 2), Buffer.from([4, 4]))
  const into = new Uint8Array(2)
  await rec.readInto(4096, into)
  t.strictSame([...into], [5, 5])
  t.equal(rec.inner, mem)
  await rec.close()
  await t.rejects(mem.read(0, 1), { code: 'BLOCKDEV_CLOSED' })
})

t.test('a copy of the bytes is logged when the write is issued', async (t) => {
  const rec = new RecordingDevice(new MemoryDevice(4096))
  const data = fill(512, 9)
  const pending = rec.write(0, data)
  await pending
  data.fill(0)
  t.strictSame(rec.writes[0]?.data, fill(512, 9))
})

t.test('durable and pending sets per crash point', async (t) => {
  const { rec } = await sequentialLog()
  const offsets = (ws: readonly { offset: number }[]): number[] => ws.map((w) => w.offset)
  t.strictSame(offsets(rec.durable(0)), [])
  t.strictSame(offsets(rec.pending(0)), [0, 512], 'before F1 completed: w0, w1')
  t.strictSame(offsets(rec.durable(1)), [0, 512])
  t.strictSame(offsets(rec.pending(1)), [1024, 0], 'between F1 and F2: w2, w3')
  t.strictSame(offsets(rec.durable(2)), [0, 512, 1024, 0])
  t.strictSame(offsets(rec.pending(2)), [4096])
  t.throws(() => rec.pending(3), { code: 'BLOCKDEV_CRASH_SPEC', message: 'BLOCKDEV_CRASH_SPEC: 3 flushes, but 2 were recorded' })
  t.throws(() => rec.durable(-1), { code: 'BLOCKDEV_CRASH_SPEC' })
  t.throws(() => rec.durable(0.5), { code: 'BLOCKDEV_CRASH_SPEC' })
})

t.test('crash states: subsets, order, torn writes', async (t) => {
  const { base, rec, mem } = await sequentialLog()
  const none = rec.crashState(base, { flushes: 1, apply: [] })
  t.strictSame(await none.read(0, 1024), Buffer.concat([fill(512, 1), fill(512, 2)]), 'only what F1 made durable')
  t.strictSame(await none.read(1024, 2048), fill(2048, 0))
  const onlyW3 = rec.crashState(base, { flushes: 1, apply: [1] })
  t.strictSame(await onlyW3.read(0, 1), Buffer.from([4]))
  t.strictSame(await onlyW3.read(1024, 1), Buffer.from([0]))
  const both = rec.crashState(base, { flushes: 1, apply: [1, 0] })
  t.strictSame(await both.read(0, 1), Buffer.from([4]), 'applied in completion order, whatever the order asked')
  t.equal(sectorsTouched(rec.pending(1)[0]!, 512), 4)
  const torn = rec.crashState(base, { flushes: 1, apply: [1], torn: { write: 0, sectors: 3 } })
  t.strictSame(await torn.read(1024, 2048), Buffer.concat([fill(1536, 3), fill(512, 0)]), 'w2 torn after three of its four sectors')
  const all = rec.crashState(base, { flushes: 2, apply: [0] })
  t.ok(all.toBuffer().equals(mem.toBuffer()), 'everything applied is the device as it ended')
  t.strictSame(await base.read(0, 1024), fill(1024, 0), 'the base is untouched')

  const bad = (state: Parameters<RecordingDevice['crashState']>[1], message: string): void => {
    t.throws(() => rec.crashState(base, state), { code: 'BLOCKDEV_CRASH_SPEC', message: `BLOCKDEV_CRASH_SPEC: ${message}` })
  }
  bad({ flushes: 1, apply: [2] }, 'apply index 2 outside the 2 pending writes')
  bad({ flushes: 1, apply: [0.5] }, 'apply index 0.5 outside the 2 pending writes')
  bad({ flushes: 1, apply: [], torn: { write: 5, sectors: 1 } }, 'torn index 5 outside the 2 pending writes')
  bad({ flushes: 1, apply: [0], torn: { write: 0, sectors: 1 } }, 'write 0 is both applied whole and torn')
  bad({ flushes: 1, apply: [], torn: { write: 0, sectors: 4 } }, 'a torn write keeps 1 to 3 of its 4 sectors, not 4')
  bad({ flushes: 1, apply: [], torn: { write: 1, sectors: 1 } }, 'a torn write keeps 1 to 0 of its 1 sectors, not 1')
  bad({ flushes: 2, apply: [], torn: { write: 0, sectors: 0 } }, 'a torn write keeps 1 to 0 of its 1 sectors, not 0')
  bad({ flushes: 9, apply: [] }, '9 flushes, but 2 were recorded')
  t.throws(() => rec.crashState(new MemoryDevice(512), { flushes: 0, apply: [] }), { code: 'BLOCKDEV_CRASH_SPEC', message: 'BLOCKDEV_CRASH_SPEC: base of 512 bytes for a device of 16384' })
})

t.test('a torn write that starts inside a sector keeps whole sectors by device boundaries', async (t) => {
  const mem = new MemoryDevice(4096)
  const base = mem.clone()
  const rec = new RecordingDevice(mem)
  await rec.write(300, fill(1000, 8)) // sectors 0, 1, 2
  const w = rec.pending(0)[0]!
  t.equal(sectorsTouched(w, 512), 3)
  const torn = rec.crashState(base, { flushes: 0, apply: [], torn: { write: 0, sectors: 1 } })
  t.strictSame(await torn.read(0, 1536), Buffer.concat([fill(300, 0), fill(212, 8), fill(1024, 0)]))
  const two = rec.crashState(base, { flushes: 0, apply: [], torn: { write: 0, sectors: 2 } })
  t.strictSame(await two.read(1000, 300), Buffer.concat([fill(24, 8), fill(276, 0)]))
  t.equal(sectorsTouched({ offset: 0, data: Buffer.alloc(0), issued: 0, completed: 1 }, 512), 0)
})

/** An inner device whose writes wait until the test releases them, to overlap writes with flushes. */
class GatedDevice extends MemoryDevice {
  gates: (() => void)[] = []
  override async write(offset: number, data: Uint8Array): Promise<void> {
    await new Promise<void>((resolve) => this.gates.push(resolve))
    await super.write(offset, data)
  }
}

t.test('a write still in flight when flush is called is not made durable by it', async (t) => {
  const mem = new GatedDevice(8192)
  const base = new MemoryDevice(8192)
  const rec = new RecordingDevice(mem)
  const slow = rec.write(0, fill(512, 1)) // issued before F1, completes after F1 is called
  const f1 = rec.flush()
  const late = rec.write(512, fill(512, 2)) // issued while F1 is in flight
  await f1
  mem.gates.shift()?.()
  mem.gates.shift()?.()
  await Promise.all([slow, late])
  await rec.flush() // F2
  t.strictSame(rec.durable(1), [], 'F1 covered nothing: the write had not completed when it was called')
  t.equal(rec.pending(0).length, 2, 'both were issued before F1 completed, so a crash before then may hold either')
  t.equal(rec.pending(1).length, 2, 'between F1 and F2 both may or may not be there')
  t.equal(rec.durable(2).length, 2)
  t.strictSame(rec.writes.map((w) => w.offset), [0, 512], 'logged in completion order')
  const state = rec.crashState(base, { flushes: 1, apply: [1] })
  t.strictSame(await state.read(0, 1024), Buffer.concat([fill(512, 0), fill(512, 2)]))
})

t.test('a failed write or flush of the inner device is not logged', async (t) => {
  const mem = new MemoryDevice(1024)
  const rec = new RecordingDevice(mem)
  await t.rejects(rec.write(1000, fill(100, 1)), { code: 'BLOCKDEV_RANGE' })
  await mem.close()
  await t.rejects(rec.flush(), { code: 'BLOCKDEV_CLOSED' })
  t.equal(rec.writes.length, 0)
  t.equal(rec.flushes.length, 0)
})

t.test('random sequential workloads: the ends of each crash window are the snapshots (seeded)', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed} (TSNFS_SEED to reproduce)`)
  let s = seed
  const next = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return Math.floor((s / 2 ** 32) * n)
  }
  const size = 32768
  const mem = MemoryDevice.fromBuffer(Buffer.alloc(size, 0xee))
  const base = mem.clone()
  const rec = new RecordingDevice(mem)
  const dev: BlockDevice = rec // the workload sees only the interface
  // atFlush[k]: the device content when flush k completed (atFlush[0]: at the start).
  const atFlush: Buffer[] = [mem.toBuffer()]
  for (let i = 0; i < 120; i++) {
    if (next(6) === 0) {
      await dev.flush()
      atFlush.push(mem.toBuffer())
    } else {
      const off = next(size - 1)
      await dev.write(off, fill(1 + next(Math.min(3000, size - off - 1)), next(256)))
    }
  }
  const end = mem.toBuffer()
  let states = 0
  // The checker's way: one durable image advanced boundary by boundary, each state built on it.
  const durable = base.clone()
  for (let k = 0; k <= rec.flushes.length; k++) {
    if (k > 0) rec.advanceDurable(durable, k)
    const pending = rec.pending(k)
    const nothing = rec.crashState(base, { flushes: k, apply: [] })
    const everything = rec.crashState(base, { flushes: k, apply: pending.map((_, i) => i) })
    if (!nothing.toBuffer().equals(atFlush[k]!)) t.fail(`seed ${seed}: crash after ${k} flushes with no pending write`)
    if (!everything.toBuffer().equals(atFlush[k + 1] ?? end)) t.fail(`seed ${seed}: crash after ${k} flushes with every pending write`)
    if (!durable.toBuffer().equals(atFlush[k]!)) t.fail(`seed ${seed}: the advanced durable image after ${k} flushes`)
    const odd = { flushes: k, apply: pending.map((_, i) => i).filter((i) => i % 2 === 1) }
    if (!rec.crashStateOn(durable, odd).toBuffer().equals(rec.crashState(base, odd).toBuffer())) t.fail(`seed ${seed}: crashStateOn and crashState differ after ${k} flushes`)
    states += 3
  }
  t.equal(states, 3 * (rec.flushes.length + 1), `checked ${states} crash states`)
  t.throws(() => { rec.advanceDurable(durable, 0) }, { code: 'BLOCKDEV_CRASH_SPEC', message: 'BLOCKDEV_CRASH_SPEC: nothing is durable after 0 flushes: the base is that image' })
})
