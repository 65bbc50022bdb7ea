import t from 'tap'
import { randomInt } from 'node:crypto'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { RecordedWrite } from '../../../vfs/engine/blockdev/recording-device.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { BS, COMMIT_MAGIC, FakeLog, makePlans, prng, runPlans, TAIL_MAGIC } from './txn-helpers.ts'
import type { LoggedCommit } from './txn-helpers.ts'

const AREA = 600
const POOL = Array.from({ length: 40 }, (_, i) => 10 + i)

async function recorded(capacity: number): Promise<{ base: MemoryDevice; mem: MemoryDevice; rec: RecordingDevice; log: FakeLog }> {
  const mem = new MemoryDevice(1024 * BS)
  const base = mem.clone()
  const rec = new RecordingDevice(mem)
  const log = new FakeLog({ capacity, dev: rec, area: AREA })
  return Promise.resolve({ base, mem, rec, log })
}

const u32 = (buf: Buffer, at: number): number => buf.readUInt32LE(at)

/** The newest copy of `block` committed by a transaction up to `tid`, or zeros. */
function expected(commits: LoggedCommit[], block: number, tid: number): Buffer {
  let out: Buffer = Buffer.alloc(BS)
  for (const c of commits) if (c.tid <= tid) out = c.blocks.get(block) ?? out
  return out
}

t.test('checkpoint order on a recording device: commit durable, then home writes, flush, then release', async (t) => {
  const seed = Number(process.env.TXN_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed} (rerun with TXN_SEED=${seed})`)
  const { base, rec, log } = await recorded(60)
  const mgr = new JournaledTxnManager(rec, log, { blockSize: BS, commitIntervalMs: 1, checkpointIntervalMs: 4 })
  await runPlans(mgr, makePlans(seed, 200, POOL, 3), 8)
  await mgr.close()
  t.strictSame(log.violations, [])
  const releases = log.events.filter((e) => e.startsWith('release')).length
  t.ok(releases > 2, `${releases} checkpoints`)

  const flushes = rec.flushes
  const durableBefore = (w: RecordedWrite, tick: number): boolean => flushes.some((f) => f.called > w.completed && f.completed < tick)
  const marker = (tid: number): RecordedWrite | undefined => rec.writes.find((w) => w.offset === (AREA + tid) * BS)
  const early: string[] = []
  let homeWrites = 0
  for (const w of rec.writes) {
    const block = w.offset / BS
    if (block >= AREA) continue
    homeWrites++
    // Which commit logged exactly these bytes (appends make every version of a block distinct).
    const c = log.commits.find((c) => c.blocks.get(block)?.equals(w.data))
    const m = c === undefined ? undefined : marker(c.tid)
    if (m === undefined || !durableBefore(m, w.issued)) early.push(`home write of block ${block} at tick ${w.issued}`)
  }
  t.ok(homeWrites >= POOL.length, `${homeWrites} home writes`)
  t.strictSame(early, [], 'no home write was issued before its transaction was durable')

  const unflushed: string[] = []
  for (const r of rec.writes.filter((w) => w.offset === AREA * BS)) {
    const upTo = u32(r.data, 4)
    for (const block of POOL) {
      const want = expected(log.commits, block, upTo)
      if (want.equals(Buffer.alloc(BS))) continue
      const home = rec.writes.find((w) => w.offset === block * BS && w.data.equals(want))
      if (home === undefined || !durableBefore(home, r.issued)) unflushed.push(`release ${upTo}: block ${block}`)
    }
  }
  t.strictSame(unflushed, [], 'every release came after the home writes it covers were flushed')

  // Power cuts: after each flush, with none, all, and random subsets of the writes in flight.
  const rnd = prng(seed)
  let states = 0
  const bad: string[] = []
  for (let k = 0; k <= flushes.length; k++) {
    const pending = rec.pending(k)
    const all = pending.map((_, i) => i)
    const subsets = [[], all, all.filter(() => rnd() < 0.5), all.filter(() => rnd() < 0.5)]
    for (const apply of subsets) {
      const dev = rec.crashState(base, { flushes: k, apply })
      states++
      // What jbd2 replay would do: from the tail, replay each transaction whose commit is on disk.
      const tail = await dev.read(AREA * BS, BS)
      const from = u32(tail, 0) === TAIL_MAGIC ? u32(tail, 4) : 0
      let last = from
      for (;;) {
        const m = await dev.read((AREA + last + 1) * BS, 8)
        if (u32(m, 0) !== COMMIT_MAGIC || u32(m, 4) !== last + 1) break
        last++
      }
      for (const block of POOL) {
        let content = await dev.read(block * BS, BS)
        for (const c of log.commits) if (c.tid > from && c.tid <= last) content = c.blocks.get(block) ?? content
        if (!content.equals(expected(log.commits, block, last))) bad.push(`flushes ${k}, apply [${apply.join(',')}]: block ${block}`)
      }
    }
  }
  t.comment(`${states} crash states checked`)
  t.strictSame(bad.slice(0, 5), [], 'every crash state replays to exactly the committed transactions')
})

t.test('a revoke drops the pending home write of an older snapshot', async (t) => {
  const { mem, rec, log } = await recorded(100)
  const mgr = new JournaledTxnManager(rec, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  const h1 = await mgr.begin()
  ;(await h1.get(20)).fill(1)
  h1.dirty(20)
  mgr.end(h1)
  await mgr.waitDurable(h1.tid)

  const h2 = await mgr.begin()
  const order: string[] = []
  h2.revoke(20)
  h2.afterCommit(() => order.push(`callback after ${log.events.at(-1)}`))
  mgr.end(h2)
  await mgr.waitDurable(h2.tid)
  t.strictSame(log.commits[1]!.revokes, [20])
  t.strictSame(order, ['callback after commit 2'], 'the freed block returns only once the revoke is durable')
  await mgr.checkpoint()
  t.strictSame(log.events, ['commit 1', 'commit 2', 'release 2'])
  t.equal(rec.writes.filter((w) => w.offset === 20 * BS).length, 0, 'block 20 never written home')
  t.strictSame(await mem.read(20 * BS, BS), Buffer.alloc(BS))
  await mgr.close()
})

t.test('logging a block again after revoking it in the same transaction cancels the revoke', async (t) => {
  const { mem, rec, log } = await recorded(100)
  const mgr = new JournaledTxnManager(rec, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0 })
  const h1 = await mgr.begin()
  ;(await h1.get(21)).fill(1)
  h1.dirty(21)
  ;(await h1.get(22)).fill(2)
  h1.dirty(22)
  mgr.end(h1)
  await mgr.waitDurable(h1.tid)

  const h2 = await mgr.begin()
  h2.revoke(21)
  h2.fresh(21).fill(5)
  ;(await h2.get(22)).fill(6)
  h2.dirty(22)
  h2.revoke(22)
  mgr.end(h2)
  await mgr.waitDurable(h2.tid)
  const c2 = log.commits[1]!
  t.strictSame([...c2.blocks.keys()], [21], 'a block revoked after its change is not logged')
  t.strictSame(c2.blocks.get(21), Buffer.alloc(BS, 5))
  t.strictSame(c2.revokes, [22], 'the revoke of the reused block was cancelled')
  await mgr.close()
  t.strictSame(await mem.read(21 * BS, BS), Buffer.alloc(BS, 5))
  t.strictSame(await mem.read(22 * BS, BS), Buffer.alloc(BS, 0), 'revoked: its pending copy never went home')
})

t.test('a full log is checkpointed before the next commit', async (t) => {
  const { mem, rec, log } = await recorded(40)
  const mgr = new JournaledTxnManager(rec, log, { blockSize: BS, commitIntervalMs: 0, checkpointIntervalMs: 0, logReserve: 0 })
  for (let i = 0; i < 12; i++) {
    const h = await mgr.begin()
    for (let b = 0; b < 5; b++) {
      ;(await h.get(10 + b)).fill(i + 1)
      h.dirty(10 + b)
    }
    mgr.end(h)
    await mgr.waitDurable(h.tid)
    t.ok(log.free >= 0)
  }
  t.strictSame(log.violations, [], 'no commit exceeded the free space')
  const releases = log.events.filter((e) => e.startsWith('release'))
  t.ok(releases.length >= 2, `${releases.length} checkpoints forced by a 40-block log (commits cost 7)`)
  await mgr.close()
  t.strictSame(await mem.read(14 * BS, BS), Buffer.alloc(BS, 12))
})
