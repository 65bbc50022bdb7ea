import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import type { TxnError } from '../../../vfs/engine/txn/txn.ts'
import { BS, CountingDevice, FakeLog } from './txn-helpers.ts'

const OFF = { commitIntervalMs: 0, checkpointIntervalMs: 0 }

function setup(capacity = 100): { dev: CountingDevice; log: FakeLog; mgr: JournaledTxnManager } {
  const dev = new CountingDevice(new MemoryDevice(256 * BS))
  const log = new FakeLog({ capacity })
  return { dev, log, mgr: new JournaledTxnManager(dev, log, { blockSize: BS, ...OFF }) }
}

async function change(mgr: JournaledTxnManager, block: number, byte: number): Promise<number> {
  const h = await mgr.begin()
  ;(await h.get(block)).fill(byte)
  h.dirty(block)
  mgr.end(h)
  return h.tid
}

const aborted = (cause: string): { code: string; message: RegExp; cause: { code: string } } => ({ code: 'TXN_ABORTED', message: new RegExp(cause), cause: { code: 'EIO' } })

t.test('a failing log commit aborts: every waiter, later begin, waitDurable and close reject', async (t) => {
  const { log, mgr } = setup()
  let open!: () => void
  log.gate = new Promise<void>((resolve) => (open = resolve))
  log.failCommit = 1
  const tid1 = await change(mgr, 5, 1)
  const first = mgr.waitDurable(tid1)
  await new Promise((resolve) => setImmediate(resolve))
  const tid2 = await change(mgr, 6, 2)
  t.equal(tid2, tid1 + 1)
  const second = mgr.waitDurable(tid2)
  const ckpt = mgr.checkpoint()
  open()
  await t.rejects(first, aborted('log write failed in commit 1'))
  await t.rejects(second, aborted('log write failed'), 'a waiter of the next transaction does not hang')
  await t.rejects(ckpt, { code: 'TXN_ABORTED' })
  await t.rejects(mgr.begin(), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.waitDurable(tid1), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.checkpoint(), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.close(), { code: 'TXN_ABORTED' })
  t.equal(log.closed, false, 'an aborted log is left for recovery')
})

t.test('a failing device flush during a checkpoint aborts and the log is not released', async (t) => {
  const { dev, log, mgr } = setup()
  await mgr.waitDurable(await change(mgr, 5, 1))
  dev.failFlush = true
  await t.rejects(mgr.checkpoint(), aborted('flush failed'))
  t.strictSame(log.events, ['commit 1'], 'no release after a failed flush')
  await t.rejects(mgr.begin(), { code: 'TXN_ABORTED' })
})

t.test('a failing home write at close aborts close', async (t) => {
  const { dev, log, mgr } = setup()
  await change(mgr, 5, 1)
  dev.failWrites = true
  await t.rejects(mgr.close(), aborted('write at 5120 failed'))
  t.strictSame(log.events, ['commit 1'])
  t.equal(log.closed, false)
})

t.test('a handle open at the abort fails its next call but can still end', async (t) => {
  const { log, mgr } = setup()
  log.failCommit = 1
  const tid = await change(mgr, 5, 1)
  const h = await mgr.begin()
  t.equal(h.tid, tid)
  const durable = mgr.waitDurable(tid)
  await new Promise((resolve) => setImmediate(resolve))
  mgr.end(h)
  await t.rejects(durable, { code: 'TXN_ABORTED' })
  await t.rejects(mgr.begin(), { code: 'TXN_ABORTED' })
})

t.test('a transaction larger than the whole log aborts with the sizes', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 50 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, maxTxnCost: 1000, ...OFF })
  const h = await mgr.begin()
  for (let b = 10; b < 60; b++) h.fresh(b).fill(1)
  mgr.end(h)
  await t.rejects(mgr.waitDurable(h.tid), { code: 'TXN_ABORTED', message: /transaction 1 needs 58 log blocks; 50 are free/ })
})

t.test('a log that cannot hold one transaction is refused at construction', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  t.throws(() => new JournaledTxnManager(dev, new FakeLog({ capacity: 8 }), { blockSize: BS, ...OFF }), {
    code: 'TXN_ABORTED',
    message: /a log of 8 free blocks cannot hold a transaction/,
  })
})

t.test('a running transaction near its size limit makes new begins wait for its commit', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 48 }) // max transaction: 12 log blocks
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, ...OFF })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < 30) {
      const op = next++
      const h = await mgr.begin()
      for (let i = 0; i < 3; i++) {
        h.fresh(10 + op * 3 + i).fill(op)
        await new Promise((resolve) => setImmediate(resolve))
      }
      mgr.end(h)
    }
  }
  await Promise.all([worker(), worker()])
  t.ok(log.commits.length >= 5, `${log.commits.length} commits with nobody waiting`)
  const biggest = Math.max(...log.commits.map((c) => c.cost))
  t.ok(biggest <= 12 + log.cost(6, 0), `largest commit costs ${biggest}`)
  t.strictSame(log.violations, [])
  await mgr.close()
  t.strictSame(await dev.read((10 + 29 * 3) * BS, BS), Buffer.alloc(BS, 29))
})

t.test('misuse gets exact errors', async (t) => {
  const { dev, mgr } = setup()
  const foreign = await new DirectTxnManager(dev, BS).begin()
  const h = await mgr.begin()
  t.throws(() => {
    h.dirty(3)
  }, { code: 'TXN_NOT_HELD', message: /block 3 marked dirty but not obtained through this handle/ })
  mgr.end(h)
  t.throws(() => {
    mgr.end(h)
  }, { code: 'TXN_ENDED' })
  await t.rejects(h.get(3), { code: 'TXN_ENDED' })
  t.throws(() => h.fresh(3), { code: 'TXN_ENDED' })
  t.throws(() => {
    h.revoke(3)
  }, { code: 'TXN_ENDED' })
  t.throws(() => {
    h.afterCommit(() => undefined)
  }, { code: 'TXN_ENDED' })
  t.throws(() => {
    mgr.end(foreign)
  }, { code: 'TXN_NOT_HELD' })
  await t.rejects(mgr.waitDurable(h.tid + 1), { code: 'TXN_NOT_HELD', message: /transaction 2 has not begun/ })
  await mgr.waitDurable(h.tid) // nothing changed: resolves without a commit
  await mgr.close()
  await mgr.close()
  const err: TxnError | undefined = await mgr.begin().then(
    () => undefined,
    (e: unknown) => e as TxnError,
  )
  t.equal(err?.code, 'TXN_CLOSED')
  await t.rejects(mgr.read(1), { code: 'TXN_CLOSED' })
})

t.test('a failed read fails that read only: the manager goes on, and the next read retries', async (t) => {
  const { dev, mgr } = setup()
  dev.failReads = true
  const h = await mgr.begin()
  await t.rejects(Promise.all([h.get(7), mgr.read(7)]), { message: 'read at 7168 failed', code: 'EIO' })
  dev.failReads = false
  ;(await h.get(7)).fill(7)
  h.dirty(7)
  mgr.end(h)
  await mgr.waitDurable(h.tid)
  t.equal(dev.reads, 1)
  await mgr.close()
  t.strictSame(await dev.read(7 * BS, BS), Buffer.alloc(BS, 7))
})

t.test('close called twice at once closes the log once', async (t) => {
  const { log, mgr } = setup()
  await change(mgr, 5, 1)
  await Promise.all([mgr.close(), mgr.close()])
  t.strictSame(log.events, ['commit 1', 'release 1', 'close'])
  t.strictSame(log.violations, [])
})

t.test('afterCommit of a transaction that changed nothing runs on the commit interval', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 2, checkpointIntervalMs: 0 })
  const h = await mgr.begin()
  const seen = { ran: false }
  h.afterCommit(() => (seen.ran = true))
  mgr.end(h)
  for (let i = 0; i < 100 && !seen.ran; i++) await new Promise((resolve) => setTimeout(resolve, 2))
  t.equal(seen.ran, true)
  t.strictSame(log.commits, [], 'nothing to log')
  await mgr.close()
})

t.test('a callback that throws aborts the manager and its waiters', async (t) => {
  const { mgr } = setup()
  const h = await mgr.begin()
  h.fresh(9)
  h.afterCommit(() => {
    throw new Error('allocator bug')
  })
  mgr.end(h)
  await t.rejects(mgr.waitDurable(h.tid), { code: 'TXN_ABORTED', message: /journal aborted: allocator bug/ })
})

t.test('abort() by the caller (damage met half-way): the running transaction never commits, what was durable stays', async (t) => {
  const { log, mgr } = setup()
  await mgr.waitDurable(await change(mgr, 5, 1))
  const half = await change(mgr, 6, 2)
  const waiting = mgr.waitDurable(half, { defer: true })
  mgr.abort(new Error('EIO: a bitmap failed its checksum'))
  mgr.abort(new Error('a second abort is a no-op'))
  await t.rejects(waiting, { code: 'TXN_ABORTED', message: /a bitmap failed its checksum/ }, 'its waiter fails: its reply never says durable')
  await t.rejects(mgr.begin(), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.close(), { code: 'TXN_ABORTED' })
  t.strictSame(log.events, ['commit 1'], 'only the transaction durable before the abort was ever logged')
})

t.test('abort() of the direct manager drops the changes not yet written', async (t) => {
  const dev = new MemoryDevice(64 * BS)
  const mgr = new DirectTxnManager(dev, BS)
  const h = await mgr.begin()
  ;(await h.get(3)).fill(9)
  h.dirty(3)
  mgr.end(h)
  mgr.abort(new Error('damage'))
  await t.rejects(mgr.waitDurable(h.tid), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.begin(), { code: 'TXN_ABORTED' })
  await t.rejects(mgr.close(), { code: 'TXN_ABORTED' })
  t.ok((await dev.read(3 * BS, BS)).equals(Buffer.alloc(BS)), 'the block was never written')
})
