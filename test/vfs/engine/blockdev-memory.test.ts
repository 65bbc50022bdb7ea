import t from 'tap'
import { randomInt } from 'node:crypto'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'

t.test('reads zeros where nothing was written, and writes across chunk boundaries', async (t) => {
  const dev = new MemoryDevice(64 * 1024)
  t.equal(dev.size, 65536)
  t.equal(dev.sectorSize, 512)
  t.equal(dev.readOnly, false)
  t.strictSame(await dev.read(1000, 10), Buffer.alloc(10))
  const data = Buffer.from(Array.from({ length: 9000 }, (_, i) => i & 0xff))
  await dev.write(4000, data)
  t.strictSame(await dev.read(4000, 9000), data)
  const into = new Uint8Array(20)
  await dev.readInto(3990, into)
  t.strictSame(Buffer.from(into), Buffer.concat([Buffer.alloc(10), data.subarray(0, 10)]))
  await dev.write(0, new Uint8Array(0))
  t.strictSame(await dev.read(65536, 0), Buffer.alloc(0), 'an empty range at the very end is inside')
  await dev.flush()
})

t.test('ranges outside the device are BLOCKDEV_RANGE errors, never short', async (t) => {
  const dev = new MemoryDevice(4096)
  await t.rejects(dev.read(4000, 97), { code: 'BLOCKDEV_RANGE', message: 'BLOCKDEV_RANGE: read of 97 bytes at offset 4000 outside the device (4096 bytes)' })
  await t.rejects(dev.write(4096, Buffer.alloc(1)), { code: 'BLOCKDEV_RANGE', message: 'BLOCKDEV_RANGE: write of 1 bytes at offset 4096 outside the device (4096 bytes)' })
  await t.rejects(dev.read(-1, 1), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(dev.read(0.5, 1), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(dev.read(0, Number.NaN), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(dev.readInto(4095, new Uint8Array(2)), { code: 'BLOCKDEV_RANGE' })
  t.throws(() => { dev.writeSync(2 ** 53, Buffer.alloc(1)) }, { code: 'BLOCKDEV_RANGE' })
})

t.test('sizes must be positive multiples of the sector size', async (t) => {
  t.throws(() => new MemoryDevice(0), { code: 'BLOCKDEV_SIZE', message: 'BLOCKDEV_SIZE: device size 0 is not a positive multiple of 512' })
  t.throws(() => new MemoryDevice(1000), { code: 'BLOCKDEV_SIZE' })
  t.throws(() => new MemoryDevice(4096, { sectorSize: 3000 }), { code: 'BLOCKDEV_SIZE', message: 'BLOCKDEV_SIZE: sector size 3000 must divide 4096' })
  t.equal(new MemoryDevice(4096, { sectorSize: 4096 }).sectorSize, 4096)
  t.equal(new MemoryDevice(2 ** 40).size, 2 ** 40, 'a sparse terabyte costs nothing')
})

t.test('read-only and closed devices refuse with their codes', async (t) => {
  const ro = MemoryDevice.fromBuffer(Buffer.alloc(1024, 7), { readOnly: true })
  t.equal(ro.readOnly, true)
  t.strictSame(await ro.read(0, 3), Buffer.from([7, 7, 7]))
  await t.rejects(ro.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_READONLY', message: 'BLOCKDEV_READONLY: write at offset 0 to a device opened read-only' })
  t.throws(() => { ro.writeSync(512, Buffer.alloc(1)) }, { code: 'BLOCKDEV_READONLY' })
  await ro.close()
  await t.rejects(ro.read(0, 1), { code: 'BLOCKDEV_CLOSED', message: 'BLOCKDEV_CLOSED: read on a closed device' })
  await t.rejects(ro.flush(), { code: 'BLOCKDEV_CLOSED' })
  t.throws(() => ro.clone(), { code: 'BLOCKDEV_CLOSED' })
  t.throws(() => ro.toBuffer(), { code: 'BLOCKDEV_CLOSED' })
  const rw = new MemoryDevice(1024)
  await rw.close()
  await t.rejects(rw.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED', message: 'BLOCKDEV_CLOSED: write on a closed device' })
})

t.test('clones are copy-on-write in both directions', async (t) => {
  const a = MemoryDevice.fromBuffer(Buffer.alloc(16384, 1))
  const b = a.clone()
  await a.write(100, Buffer.from('aaaa'))
  await b.write(102, Buffer.from('bbbb'))
  t.strictSame(await a.read(100, 6), Buffer.from([0x61, 0x61, 0x61, 0x61, 1, 1]))
  t.strictSame(await b.read(100, 6), Buffer.from([1, 1, 0x62, 0x62, 0x62, 0x62]))
  const c = b.clone({ readOnly: true })
  await b.write(102, Buffer.from('cc'))
  t.strictSame(await c.read(102, 4), Buffer.from('bbbb'), 'the clone keeps the state it was taken in')
  t.equal(c.readOnly, true)
  await a.close()
  t.strictSame(await b.read(100, 2), Buffer.from([1, 1]), 'closing one side leaves the other whole')
})

t.test('random writes agree with a flat buffer (seeded)', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed} (TSNFS_SEED to reproduce)`)
  let s = seed
  const next = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return Math.floor((s / 2 ** 32) * n)
  }
  const size = 40960
  const model = Buffer.alloc(size)
  const dev = new MemoryDevice(size)
  const clones: [MemoryDevice, Buffer][] = []
  for (let i = 0; i < 400; i++) {
    const off = next(size)
    const len = next(Math.min(9000, size - off) + 1)
    const data = Buffer.alloc(len, next(256))
    await dev.write(off, data)
    data.copy(model, off)
    if (i % 50 === 0) clones.push([dev.clone(), Buffer.from(model)])
  }
  t.ok(dev.toBuffer().equals(model), `seed ${seed}: device equals the model`)
  for (const [clone, snapshot] of clones) t.ok(clone.toBuffer().equals(snapshot), `seed ${seed}: clone kept its snapshot`)
})

t.test('contentKey is equal exactly for equal contents, whatever the clones and writes behind them', async (t) => {
  const a = MemoryDevice.fromBuffer(Buffer.alloc(16384, 1))
  const empty = new MemoryDevice(16384).contentKey()
  t.equal(new MemoryDevice(16384).contentKey(), empty, 'two empty devices')
  const zeroed = new MemoryDevice(16384)
  await zeroed.write(5000, Buffer.alloc(3000))
  t.equal(zeroed.contentKey(), empty, 'zeros written count as never written')
  const key = a.contentKey()
  const b = a.clone()
  t.equal(b.contentKey(), key, 'a clone has its origin key')
  await b.write(8192, Buffer.from('x'))
  t.not(b.contentKey(), key, 'one byte changes it')
  t.equal(a.contentKey(), key, 'the origin keeps its key')
  await b.write(8192, Buffer.from([1]))
  t.equal(b.contentKey(), key, 'writing the old byte back restores it')
  // Same bytes in another chunk: the index is part of each chunk's digest.
  const c = new MemoryDevice(16384)
  await c.write(0, Buffer.alloc(4096, 9))
  const d = new MemoryDevice(16384)
  await d.write(4096, Buffer.alloc(4096, 9))
  t.not(c.contentKey(), d.contentKey(), 'same chunk at another place')
  // A chunk written in place after its key was taken (owned, so never cached).
  const e = new MemoryDevice(16384)
  await e.write(0, Buffer.alloc(10, 3))
  const k1 = e.contentKey()
  await e.write(0, Buffer.alloc(10, 4))
  t.not(e.contentKey(), k1, 'an owned chunk is hashed afresh')
  await e.close()
  t.throws(() => e.contentKey(), { code: 'BLOCKDEV_CLOSED' })
})
