/*
 * The journal-less transaction manager's block cache (vfs/engine/txn/direct-txn.ts) has a byte
 * limit when given one (a read-only engine export: cache= bounds it): reads past it drop the
 * oldest clean blocks, never a block a change still holds, and a dropped block is read again.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { BLOCK_OVERHEAD } from '../../../vfs/engine/txn/buffer-cache.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { BS, CountingDevice } from './txn-helpers.ts'

const LIMIT = 8 * (BS + BLOCK_OVERHEAD)

function device(): CountingDevice {
  const mem = new MemoryDevice(256 * BS)
  return new CountingDevice(mem)
}

t.test('reads keep the cache within its byte limit; a dropped block is read again, the same', async (t) => {
  const dev = device()
  for (let b = 0; b < 100; b++) await dev.write(b * BS, Buffer.alloc(BS, b))
  const mgr = new DirectTxnManager(dev, BS, LIMIT)
  let over = 0
  for (let b = 0; b < 100; b++) {
    const buf = await mgr.read(b)
    t.equal(buf[0], b, `block ${String(b)}`)
    if (mgr.cacheStats.bytes > LIMIT) over++
  }
  t.equal(over, 0, 'never over the limit')
  t.strictSame(mgr.cacheStats, { blocks: 8, pinned: 0, bytes: LIMIT, limit: LIMIT })
  const reads = dev.reads
  t.equal((await mgr.read(99))[0], 99, 'a kept block')
  t.equal(dev.reads, reads, 'from the cache')
  t.equal((await mgr.read(0))[0], 0, 'a dropped block')
  t.equal(dev.reads, reads + 1, 'read from the device again')
  await mgr.close()
})

t.test('without a limit (mkfs, fsck) every block read stays', async (t) => {
  const mgr = new DirectTxnManager(device(), BS)
  for (let b = 0; b < 100; b++) await mgr.read(b)
  t.equal(mgr.cacheStats.blocks, 100)
  await mgr.close()
})

t.test('blocks a transaction changed are never dropped before they are written', async (t) => {
  const dev = device()
  const mgr = new DirectTxnManager(dev, BS, LIMIT)
  const h = await mgr.begin()
  // 20 blocks changed, more than the limit holds, then 50 more read while the change is open.
  for (let b = 0; b < 20; b++) {
    const buf = await h.get(b)
    buf.fill(0xa0 + b)
    h.dirty(b)
  }
  for (let b = 100; b < 150; b++) await mgr.read(b)
  mgr.end(h)
  // After the transaction: reads drop clean blocks only; the 20 dirty ones wait for the commit.
  for (let b = 150; b < 200; b++) await mgr.read(b)
  t.equal(mgr.cacheStats.pinned, 20, 'the changed blocks are held')
  t.ok(mgr.cacheStats.blocks >= 20, `still cached (${String(mgr.cacheStats.blocks)} blocks)`)
  await mgr.waitDurable(h.tid)
  for (let b = 0; b < 20; b++) t.equal((await dev.read(b * BS, BS))[0], 0xa0 + b, `block ${String(b)} written`)
  for (let b = 200; b < 220; b++) await mgr.read(b)
  t.ok(mgr.cacheStats.bytes <= LIMIT, `written, then back within the limit (${String(mgr.cacheStats.bytes)} bytes)`)
  await mgr.close()
})
