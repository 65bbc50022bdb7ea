/*
 * The idle trim of the engine's caches (vfs/engine/fs/caches.ts calls it when the server is idle):
 * clean blocks go, oldest first, down to the low mark given; a block held by a running handle, a
 * dirty one and a committed one not yet written home stay (dropping one would lose a change or
 * let a re-read see the stale home copy); a dropped block is read again, the same. The direct
 * (read-only) manager trims nothing while a transaction is open. The counters count hits, misses
 * and the limit's evictions. Decoded inodes: the old generation first, then the young one's oldest.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { TwoGenerationCache } from '../../../vfs/engine/inode/two-generation-cache.ts'
import { BLOCK_OVERHEAD } from '../../../vfs/engine/txn/buffer-cache.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { BS, CountingDevice, FakeLog } from './txn-helpers.ts'

const COST = BS + BLOCK_OVERHEAD

function device(): CountingDevice {
  return new CountingDevice(new MemoryDevice(256 * BS))
}

t.test('journaled: a trim drops clean blocks down to the low mark, never a held, dirty or unwritten one', async (t) => {
  const dev = device()
  for (let b = 0; b < 200; b++) await dev.write(b * BS, Buffer.alloc(BS, b))
  const mgr = new JournaledTxnManager(dev, new FakeLog({ capacity: 200 }), { blockSize: BS, cacheBytes: 64 * COST, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  // Block 5: committed, waiting for its checkpoint (home still has the old bytes).
  const h1 = await mgr.begin()
  ;(await h1.get(5)).fill(0xa5)
  h1.dirty(5)
  mgr.end(h1)
  await mgr.waitDurable(h1.tid)
  // Block 6 held and block 7 dirty by a running handle.
  const h2 = await mgr.begin()
  const held = await h2.get(6)
  ;(await h2.get(7)).fill(0xa7)
  h2.dirty(7)
  for (let b = 100; b < 140; b++) await mgr.read(b)
  t.strictSame(mgr.cacheStats, { blocks: 43, pinned: 3, bytes: 43 * COST, limit: 64 * COST })
  t.strictSame(mgr.cacheCounts, { hits: 0, misses: 43, evictions: 0 }, 'every first read a miss')

  t.equal(mgr.trimCache(10 * COST), 33 * COST, 'down to the low mark: 10 blocks kept, 33 let go')
  t.strictSame(mgr.cacheStats, { blocks: 10, pinned: 3, bytes: 10 * COST, limit: 64 * COST })
  const reads = dev.reads
  t.equal((await mgr.read(139))[0], 139, 'the newest clean block stayed')
  t.equal(dev.reads, reads, 'from the cache')
  t.equal(mgr.trimCache(0), 7 * COST, 'low mark 0: every clean block goes')
  t.strictSame(mgr.cacheStats, { blocks: 3, pinned: 3, bytes: 3 * COST, limit: 64 * COST }, 'the pinned blocks stay')
  t.equal(await mgr.read(6), held, 'the held block is the same live buffer')
  t.strictSame(await mgr.read(7), Buffer.alloc(BS, 0xa7), 'the dirty block keeps its change')
  t.strictSame(await mgr.read(5), Buffer.alloc(BS, 0xa5), 'the unwritten block keeps its committed bytes')
  t.strictSame(await dev.read(5 * BS, BS), Buffer.alloc(BS, 5), 'home still old: only the cache has it')
  const before = dev.reads
  t.equal((await mgr.read(100))[0], 100, 'a dropped block reads again, the same')
  t.equal(dev.reads, before + 1, 'from the device')
  mgr.end(h2)
  await mgr.waitDurable(h2.tid)
  await mgr.close()
  t.strictSame(await dev.read(7 * BS, BS), Buffer.alloc(BS, 0xa7), 'the change held through the trim reached home')
  t.strictSame(await dev.read(5 * BS, BS), Buffer.alloc(BS, 0xa5))
  t.equal(mgr.trimCache(0), 0, 'closed: nothing to trim')
})

t.test('journaled: hits, misses and the limit\'s evictions are counted', async (t) => {
  const mgr = new JournaledTxnManager(device(), new FakeLog({ capacity: 200 }), { blockSize: BS, cacheBytes: 8 * COST, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  for (let b = 0; b < 12; b++) await mgr.read(b)
  for (let b = 8; b < 12; b++) await mgr.read(b)
  await Promise.all([mgr.read(50), mgr.read(50)])
  t.strictSame(mgr.cacheCounts, { hits: 4, misses: 13, evictions: 5 }, 'concurrent misses of one block: one miss')
  mgr.trimCache(0)
  t.equal(mgr.cacheCounts.evictions, 5, 'a trim is not an eviction')
  await mgr.close()
})

t.test('direct: a trim drops clean blocks, none while a transaction is open', async (t) => {
  const dev = device()
  for (let b = 0; b < 100; b++) await dev.write(b * BS, Buffer.alloc(BS, b))
  const mgr = new DirectTxnManager(dev, BS, 64 * COST)
  for (let b = 0; b < 20; b++) await mgr.read(b)
  const h = await mgr.begin()
  ;(await h.get(3)).fill(0xee)
  h.dirty(3)
  t.equal(mgr.trimCache(0), 0, 'a transaction is open: nothing dropped')
  t.equal(mgr.cacheStats.blocks, 20)
  mgr.end(h)
  t.equal(mgr.trimCache(4 * COST), 16 * COST, 'down to the low mark once none is open')
  t.strictSame(mgr.cacheStats, { blocks: 4, pinned: 1, bytes: 4 * COST, limit: 64 * COST })
  t.strictSame(await mgr.read(3), Buffer.alloc(BS, 0xee), 'the dirty block stayed')
  t.equal(mgr.trimCache(0), 3 * COST, 'low mark 0: all but the dirty block')
  t.equal(mgr.cacheStats.blocks, 1)
  t.equal((await mgr.read(19))[0], 19, 'a dropped block reads again, the same')
  t.strictSame(mgr.cacheCounts, { hits: 2, misses: 21, evictions: 0 })
  await mgr.waitDurable(h.tid)
  t.strictSame(await dev.read(3 * BS, BS), Buffer.alloc(BS, 0xee), 'the change reached the device')
  await mgr.close()
})

t.test('two-generation cache: a trim keeps the newest entries', async (t) => {
  const c = new TwoGenerationCache<number, string>(8)
  for (let i = 0; i < 8; i++) c.set(i, `v${i}`)
  t.equal(c.size, 8)
  t.equal(c.trim(8), 0, 'at or under the mark: nothing')
  t.equal(c.trim(3), 5)
  t.equal(c.size, 3)
  t.strictSame([5, 6, 7].map((i) => c.get(i)), ['v5', 'v6', 'v7'], 'the newest stayed')
  t.equal(c.get(4), undefined, 'older ones went')
  t.equal(c.trim(0), 3)
  t.equal(c.size, 0)
  c.set(1, 'again')
  t.equal(c.get(1), 'again', 'usable after a trim')
})
