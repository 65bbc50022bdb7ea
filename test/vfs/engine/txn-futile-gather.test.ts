/*
 * The gather before a commit (journaled-txn.ts #gather) waits for as many waiters as the last
 * commit answered. A client that sends the rest of its requests only once the first ones are
 * answered (nfsprobe at K=32: 29, then 3) makes that wait futile every time: nobody joins, and the
 * 3 wait up to a commit time for nothing. After three futile gathers in a row the manager stops
 * gathering (but for an occasional probe). Observed without timing: a begin right after a lone
 * waitDurable joins the same transaction while a gather holds its commit, the next one otherwise.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import type { MetaTxn } from '../../../vfs/engine/txn/txn.ts'
import { BS, FakeLog } from './txn-helpers.ts'

async function change(mgr: JournaledTxnManager, block: number): Promise<MetaTxn> {
  const h = await mgr.begin()
  ;(await h.get(block)).fill(block & 0xff)
  h.dirty(block)
  mgr.end(h)
  return h
}

t.test('after three gathers nobody joined, a lone commit no longer waits for a batch', async (t) => {
  const dev = new MemoryDevice(512 * BS)
  const log = new FakeLog({ capacity: 4000, delayMs: 2 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, maxBatchMs: 50 })
  try {
    // A burst of 8 answered by one commit (7 deferred waits, the last one asks), then a lone
    // change: it gathers (8 were answered last time) and nobody joins.
    const round = async (r: number): Promise<{ lone: MetaTxn; joined: boolean }> => {
      const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => change(mgr, 10 + r * 10 + i)))
      await Promise.all(burst.map((h, i) => mgr.waitDurable(h.tid, { defer: i < 7 })))
      const lone = await change(mgr, 9)
      const done = mgr.waitDurable(lone.tid)
      // Synchronously after the wait: if the manager is gathering, this joins the lone change's
      // transaction; if it committed at once, its snapshot is taken and this joins the next.
      const next = await mgr.begin()
      const joined = next.tid === lone.tid
      mgr.end(next)
      await done
      if (!joined) await mgr.waitDurable(next.tid)
      return { lone, joined }
    }
    // Lone changes whose gathers nobody joins with a wait of its own (the begin in round() joins
    // but waits for nothing, so its gather counts as futile too).
    const lonely = async (r: number): Promise<void> => {
      const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => change(mgr, 10 + r * 10 + i)))
      await Promise.all(burst.map((h, i) => mgr.waitDurable(h.tid, { defer: i < 7 })))
      const lone = await change(mgr, 9)
      await mgr.waitDurable(lone.tid)
    }
    const first = await round(0)
    t.equal(first.joined, true, 'a gather holds the first lone commit: the next begin joins it (futile gather 1)')
    await lonely(1)
    await lonely(2)
    const after = await round(3)
    t.equal(after.joined, false, 'after three futile gathers the lone commit goes at once: the next begin starts a new transaction')
    t.strictSame(log.violations, [], 'one log call at a time, consecutive tids')
  } finally {
    await mgr.close()
  }
})
