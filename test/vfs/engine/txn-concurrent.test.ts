import t from 'tap'
import { randomInt } from 'node:crypto'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { BS, FakeLog, halfOps, makePlans, opsIn, runPlans } from './txn-helpers.ts'

const POOL = Array.from({ length: 48 }, (_, i) => 10 + i)

t.test('concurrent handles across awaits: no commit holds half an operation, durable ops are whole', async (t) => {
  const seed = Number(process.env.TXN_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed} (rerun with TXN_SEED=${seed})`)
  const plans = makePlans(seed, 400, POOL, 4)
  const dev = new MemoryDevice(1024 * BS)
  const log = new FakeLog({ capacity: 120 })
  const mgr = new JournaledTxnManager(dev, log, { blockSize: BS, commitIntervalMs: 2, checkpointIntervalMs: 7 })
  // What replay of the whole log would leave: the newest committed copy of each block.
  const committed = new Map<number, Buffer>()
  const halves: number[] = []
  log.onCommit = (c) => {
    for (const [b, data] of c.blocks) committed.set(b, data)
    halves.push(...halfOps(committed, plans))
  }
  const lateDurable: number[] = []
  await runPlans(mgr, plans, 24, (op) => {
    const plan = plans[op - 1]!
    for (const b of plan.blocks) if (!opsIn(committed.get(b) ?? Buffer.alloc(BS)).includes(op)) lateDurable.push(op)
  })
  await mgr.close()

  t.strictSame(log.violations, [], 'the log contract held')
  t.strictSame(halves, [], 'no commit included half an operation')
  t.strictSame(lateDurable, [], 'waitDurable resolved only once the op was logged')
  t.ok(log.commits.length > 3, `${log.commits.length} commits`)
  t.ok(log.events.filter((e) => e.startsWith('release')).length > 1, 'the small log forced checkpoints')
  t.equal(log.events.at(-1), 'close')
  t.equal(log.released, log.commits.at(-1)!.tid, 'everything released before close')
  t.equal(log.free, log.capacity)
  // Home now holds every op, whole, and exactly what the log committed last.
  let total = 0
  const wrongHome: number[] = []
  for (const b of POOL) {
    const home = await dev.read(b * BS, BS)
    if (!home.equals(committed.get(b) ?? Buffer.alloc(BS))) wrongHome.push(b)
    total += opsIn(home).length
  }
  t.strictSame(wrongHome, [], 'every home block holds its last committed copy')
  t.equal(total, plans.reduce((n, p) => n + p.blocks.length, 0), 'every append reached home')
})

t.test('one at a time, the journaled manager leaves the same image as DirectTxnManager', async (t) => {
  const seed = Number(process.env.TXN_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed}`)
  const plans = makePlans(seed, 120, POOL, 4)
  const a = new MemoryDevice(256 * BS)
  const b = new MemoryDevice(256 * BS)
  const journaled = new JournaledTxnManager(a, new FakeLog({ capacity: 64 }), { blockSize: BS, commitIntervalMs: 1 })
  const direct = new DirectTxnManager(b, BS)
  await runPlans(journaled, plans, 1)
  await runPlans(direct, plans, 1)
  await journaled.close()
  await direct.close()
  t.ok(a.toBuffer().equals(b.toBuffer()), 'images are byte-identical')
})
