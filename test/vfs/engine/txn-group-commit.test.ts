import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { BS, CountingDevice, FakeLog } from './txn-helpers.ts'

t.test('group commit: N writers each waiting durable share a few commits and flushes', async (t) => {
  const N = 64
  const ROUNDS = 8
  const dev = new CountingDevice(new MemoryDevice(1024 * BS))
  // The log flushes the device once per commit, after a 2 ms "disk" latency.
  const log = new FakeLog({ capacity: 800, dev, area: 600, delayMs: 2 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  let durable = 0
  const early: string[] = []
  const writer = async (w: number): Promise<void> => {
    for (let round = 1; round <= ROUNDS; round++) {
      const h = await mgr.begin()
      const buf = await h.get(10 + w)
      buf.writeUInt32LE(round, 0)
      h.dirty(10 + w)
      mgr.end(h)
      await mgr.waitDurable(h.tid)
      if (mgr.durableTid < h.tid) early.push(`writer ${w} round ${round}`)
      durable++
    }
  }
  await Promise.all(Array.from({ length: N }, (_, w) => writer(w)))
  const commits = log.commits.length
  const flushes = dev.flushes
  t.comment(`${N * ROUNDS} durable ops: ${commits} commits, ${flushes} flushes`)
  t.equal(durable, N * ROUNDS)
  t.strictSame(early, [], 'no waitDurable resolved before its transaction was durable')
  t.strictSame(log.violations, [], 'one log call at a time, consecutive tids')
  t.ok(commits <= ROUNDS * 3, `${commits} commits for ${N * ROUNDS} ops`)
  t.ok(flushes <= ROUNDS * 3, `${flushes} flushes for ${N * ROUNDS} ops`)
  await mgr.close()
  const homes: number[] = []
  for (let w = 0; w < N; w++) homes.push((await dev.read((10 + w) * BS, 4)).readUInt32LE(0))
  t.strictSame(homes, Array.from({ length: N }, () => ROUNDS), 'every writer last round is home')
})

t.test('the commit interval commits metadata nobody waits for', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 5, checkpointIntervalMs: 0 })
  const h = await mgr.begin()
  ;(await h.get(7)).fill(7)
  h.dirty(7)
  mgr.end(h)
  const tid = h.tid
  while (mgr.durableTid < tid) await new Promise((resolve) => setTimeout(resolve, 2))
  t.equal(log.commits.length, 1)
  t.strictSame(log.commits[0]!.blocks.get(7), Buffer.alloc(BS, 7))
  t.equal((await dev.read(7 * BS, 1))[0], 0, 'not home before a checkpoint')
  await mgr.close()
  t.equal((await dev.read(7 * BS, 1))[0], 7, 'home after close')
})

t.test('snapshot: a block changed in T+1 while T commits is logged with T content; home gets T then T+1', async (t) => {
  const mem = new MemoryDevice(256 * BS)
  const dev = new RecordingDevice(mem)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  let open!: () => void
  log.gate = new Promise<void>((resolve) => (open = resolve))

  const h1 = await mgr.begin()
  ;(await h1.get(9)).fill(1)
  h1.dirty(9)
  mgr.end(h1)
  const d1 = mgr.waitDurable(h1.tid)
  // T is now waiting on the log; T+1 changes the same live buffer meanwhile.
  await new Promise((resolve) => setImmediate(resolve))
  const h2 = await mgr.begin()
  t.equal(h2.tid, h1.tid + 1, 'a new begin joins the next transaction while T is in the log')
  ;(await h2.get(9)).fill(2)
  h2.dirty(9)
  mgr.end(h2)
  open()
  await d1
  t.strictSame(log.commits[0]!.blocks.get(9), Buffer.alloc(BS, 1), 'T logged its own content')
  t.strictSame(await mgr.read(9), Buffer.alloc(BS, 2), 'the live buffer holds T+1')

  await mgr.checkpoint()
  t.strictSame(await mem.read(9 * BS, BS), Buffer.alloc(BS, 1), 'checkpoint wrote T content, not the uncommitted live buffer')
  t.strictSame(log.events, ['commit 1', 'release 1'])
  await mgr.waitDurable(h2.tid)
  t.strictSame(log.commits[1]!.blocks.get(9), Buffer.alloc(BS, 2))
  await mgr.close()
  const homeWrites = dev.writes.filter((w) => w.offset === 9 * BS).map((w) => w.data[0])
  t.strictSame(homeWrites, [1, 2], 'home got T, then T+1')
  t.strictSame(log.events, ['commit 1', 'release 1', 'commit 2', 'release 2', 'close'])
})

t.test('a begin during the wait for open handles joins the next transaction after the snapshot', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  const slow = await mgr.begin()
  ;(await slow.get(3)).fill(3)
  slow.dirty(3)
  const durable = mgr.waitDurable(slow.tid)
  let joined = false
  const late = mgr.begin().then((h) => {
    joined = true
    return h
  })
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(joined, false, 'the begin waits while T is locked')
  t.equal(log.commits.length, 0, 'T waits for its open handle')
  ;(await slow.get(4)).fill(4)
  slow.dirty(4)
  mgr.end(slow)
  const h = await late
  t.equal(h.tid, slow.tid + 1)
  await durable
  t.strictSame([...log.commits[0]!.blocks.keys()], [3, 4], 'the whole operation, both blocks, in T')
  mgr.end(h)
  await mgr.close()
})

t.test('a deferred wait does not start the commit; the next plain wait does, and one commit carries both', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, deferMs: 60_000 })
  const h1 = await mgr.begin()
  ;(await h1.get(7)).fill(1)
  h1.dirty(7)
  mgr.end(h1)
  let firstDone = false
  const first = mgr.waitDurable(h1.tid, { defer: true }).then(() => (firstDone = true))
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(log.commits.length, 0, 'nothing committed while only a deferred wait is pending')
  t.equal(firstDone, false)
  const h2 = await mgr.begin()
  t.equal(h2.tid, h1.tid, 'the next change joins the same transaction')
  ;(await h2.get(8)).fill(2)
  h2.dirty(8)
  mgr.end(h2)
  await mgr.waitDurable(h2.tid)
  await first
  t.equal(log.commits.length, 1, 'one commit for both changes')
  t.strictSame([...log.commits[0]!.blocks.keys()].sort(), [7, 8])
  await mgr.close()
})

t.test('a deferred wait nobody follows is committed after deferMs', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 100 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, deferMs: 5 })
  const h = await mgr.begin()
  ;(await h.get(7)).fill(1)
  h.dirty(7)
  mgr.end(h)
  await mgr.waitDurable(h.tid, { defer: true })
  t.equal(log.commits.length, 1, 'the manager asked by itself')
  t.ok(mgr.durableTid >= h.tid)
  await mgr.close()
})

t.test('a commit waits (about one commit time) for as many waiters as the last commit answered', async (t) => {
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 400, delayMs: 20 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, maxBatchMs: 50 })
  const change = async (block: number): Promise<void> => {
    const h = await mgr.begin()
    ;(await h.get(block)).fill(block)
    h.dirty(block)
    mgr.end(h)
    await mgr.waitDurable(h.tid)
  }
  // Round 1: eight at once, one commit; the manager now expects batches of eight.
  await Promise.all(Array.from({ length: 8 }, (_, i) => change(10 + i)))
  t.equal(log.commits.length, 1, 'round 1: one commit')
  // Round 2: four now and four a millisecond later, as clients whose replies went out together
  // come back. Without waiting the first four would commit alone and the rest in a second commit.
  const early = Array.from({ length: 4 }, (_, i) => change(20 + i))
  const late = new Promise<void>((resolve, reject) => {
    setTimeout(() => {
      Promise.all(Array.from({ length: 4 }, (_, i) => change(24 + i))).then(() => { resolve(); }, reject)
    }, 1)
  })
  await Promise.all([...early, late])
  t.equal(log.commits.length, 2, 'round 2: the late four joined the early four in one commit')
  t.strictSame([...log.commits[1]!.blocks.keys()].sort((a, b) => a - b), [20, 21, 22, 23, 24, 25, 26, 27])
  // A lone writer after that waits at most one commit time, then commits by itself.
  await change(30)
  t.equal(log.commits.length, 3)
  await mgr.close()
})

t.test('a begin that finds the running transaction too big, on an idle manager, gets its handle', async (t) => {
  // The commit it asks for can take its snapshot (and open the gate) within the ask itself; the
  // begin must already be waiting at the gate then. It was not: found by txn-concurrent with
  // TXN_SEED=802836820, the begin waited for a commit nobody asked for again.
  const dev = new MemoryDevice(256 * BS)
  const log = new FakeLog({ capacity: 64 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, maxTxnCost: 8 })
  for (let b = 10; b < 30; b++) {
    const h = await mgr.begin()
    ;(await h.get(b)).fill(b)
    h.dirty(b)
    mgr.end(h)
  }
  let timer: NodeJS.Timeout | undefined
  const got = await Promise.race([
    mgr.begin(),
    new Promise<'stuck'>((resolve) => {
      timer = setTimeout(() => {
        resolve('stuck')
      }, 2000)
    }),
  ])
  clearTimeout(timer)
  t.not(got, 'stuck', 'begin returned')
  if (got !== 'stuck') mgr.end(got)
  t.ok(log.commits.length >= 2, `${log.commits.length} commits of the too-big transactions`)
  await mgr.close()
})
