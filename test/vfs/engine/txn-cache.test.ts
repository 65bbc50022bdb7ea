import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { BLOCK_OVERHEAD } from '../../../vfs/engine/txn/buffer-cache.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { BS, CountingDevice, FakeLog } from './txn-helpers.ts'

const LIMIT = 8 * (BS + BLOCK_OVERHEAD)

function setup(): { dev: CountingDevice; log: FakeLog; mgr: JournaledTxnManager } {
  const dev = new CountingDevice(new MemoryDevice(256 * BS))
  const log = new FakeLog({ capacity: 200 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, cacheBytes: LIMIT, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  return { dev, log, mgr }
}

t.test('eviction keeps the cache under its byte limit', async (t) => {
  const { dev, mgr } = setup()
  let over = 0
  for (let b = 0; b < 100; b++) {
    await mgr.read(b)
    if (mgr.cacheStats.bytes > LIMIT) over++
  }
  t.equal(over, 0, 'never over the limit')
  t.strictSame(mgr.cacheStats, { blocks: 8, pinned: 0, bytes: LIMIT, limit: LIMIT })
  t.equal(dev.reads, 100)
  await mgr.close()
})

t.test('clean blocks are evicted least recently used first', async (t) => {
  const { dev, mgr } = setup()
  for (let b = 0; b < 8; b++) await mgr.read(b)
  await mgr.read(0) // now 1 is the oldest
  t.equal(dev.reads, 8, 'a hit reads nothing')
  await mgr.read(8)
  await mgr.read(0)
  t.equal(dev.reads, 9, '0 stayed')
  await mgr.read(1)
  t.equal(dev.reads, 10, '1 was evicted')
  await mgr.close()
})

t.test('concurrent misses of one block do one device read; read and get share the buffer', async (t) => {
  const { dev, mgr } = setup()
  const h = await mgr.begin()
  const bufs = await Promise.all([mgr.read(50), h.get(50), mgr.read(50), h.get(50), mgr.read(50)])
  t.equal(dev.reads, 1)
  t.ok(bufs.every((b) => b === bufs[0]), 'one live buffer')
  mgr.end(h)
  await mgr.close()
})

t.test('blocks held by a handle or dirty stay cached past the limit; a checkpoint brings it back under', async (t) => {
  const { log, mgr } = setup()
  const h = await mgr.begin()
  const held = await h.get(1)
  for (let b = 100; b < 120; b++) await mgr.read(b)
  t.equal(await mgr.read(1), held, 'a block held across awaits is never evicted')
  for (let b = 20; b < 40; b++) {
    ;(await h.get(b)).fill(b)
    h.dirty(b)
  }
  t.equal(mgr.cacheStats.pinned, 21, 'dirty and held blocks are pinned')
  t.ok(mgr.cacheStats.bytes > LIMIT, 'pinned blocks may exceed the limit')
  mgr.end(h)
  await mgr.waitDurable(h.tid)
  // Committed blocks stay pinned until home; being over the limit asks for that checkpoint.
  for (let i = 0; i < 100 && mgr.cacheStats.bytes > LIMIT; i++) await new Promise((resolve) => setImmediate(resolve))
  t.ok(mgr.cacheStats.bytes <= LIMIT, `back under the limit (${mgr.cacheStats.bytes} bytes)`)
  t.equal(mgr.cacheStats.pinned, 0)
  t.strictSame(log.events, ['commit 1', 'release 1'])
  await mgr.close()
})

t.test('a block waiting for its checkpoint is not evicted (a re-read would see the stale home copy)', async (t) => {
  const dev = new CountingDevice(new MemoryDevice(256 * BS))
  const log = new FakeLog({ capacity: 200 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, cacheBytes: 64 * (BS + BLOCK_OVERHEAD), commitIntervalMs: 0, checkpointIntervalMs: 0 })
  const h = await mgr.begin()
  ;(await h.get(5)).fill(9)
  h.dirty(5)
  mgr.end(h)
  await mgr.waitDurable(h.tid)
  for (let b = 100; b < 200; b++) await mgr.read(b)
  t.equal(mgr.cacheStats.pinned, 1)
  t.strictSame(await mgr.read(5), Buffer.alloc(BS, 9))
  t.strictSame(await dev.read(5 * BS, BS), Buffer.alloc(BS), 'home still old: only the cache has it')
  await mgr.close()
})

t.test('a block made fresh while its read is in flight: the read returns the fresh buffer', async (t) => {
  const { dev, mgr } = setup()
  await dev.write(60 * BS, Buffer.alloc(BS, 0xee))
  const h = await mgr.begin()
  const reading = mgr.read(60)
  const fresh = h.fresh(60)
  fresh.fill(1)
  t.equal(await reading, fresh, 'the stale device copy never replaces the newer buffer')
  mgr.end(h)
  await mgr.close()
  t.strictSame(await dev.read(60 * BS, BS), Buffer.alloc(BS, 1))
})

t.test('fresh on a block still cached clean zero-fills that same buffer', async (t) => {
  const { dev, mgr } = setup()
  await dev.write(61 * BS, Buffer.alloc(BS, 0xee))
  const old = await mgr.read(61)
  const h = await mgr.begin()
  const fresh = h.fresh(61)
  t.equal(fresh, old, 'one live buffer per block')
  t.strictSame(fresh, Buffer.alloc(BS))
  mgr.end(h)
  await mgr.close()
  t.strictSame(await dev.read(61 * BS, BS), Buffer.alloc(BS))
})
