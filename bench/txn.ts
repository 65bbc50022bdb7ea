/**
 * The journaled transaction manager alone: `npx tsx --expose-gc bench/txn.ts [N…]`.
 *
 * 1. Group commit: N writers each loop begin → change one block → end → waitDurable for 2 s, over
 *    a memory device and an in-memory log whose commit costs one 1 ms "flush". Without group
 *    commit durable ops/s could not pass 1000 (one flush each); with it they grow with N while
 *    commits/s stays near 1000 / (flush time + commit work).
 * 2. Cache cost per block (BLOCK_OVERHEAD's measurement): heap + external and RSS growth for
 *    100,000 cached blocks, beyond their data (needs --expose-gc; run each block size in a fresh
 *    process for a clean RSS figure: `npx tsx --expose-gc bench/txn.ts cache 1024`).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryDevice } from '../vfs/engine/blockdev/memory-device.ts'
import { BufferCache } from '../vfs/engine/txn/buffer-cache.ts'
import { JournaledTxnManager } from '../vfs/engine/txn/journaled-txn.ts'
import type { TxnLog } from '../vfs/engine/txn/txn.ts'

const BS = 4096

class SlowLog implements TxnLog {
  free = 1 << 20
  commits = 0
  cost(blocks: number, revokes: number): number {
    return Math.ceil(blocks / 250) + blocks + Math.ceil(revokes / 500) + 1
  }
  async commit(): Promise<void> {
    this.commits++
    await sleep(1)
  }
  async release(): Promise<void> {}
  async close(): Promise<void> {}
}

async function groupCommit(n: number, ms = 2000): Promise<void> {
  const log = new SlowLog()
  const mgr = new JournaledTxnManager(new MemoryDevice(4096 * BS), log, { blockSize: BS, checkpointIntervalMs: 200 })
  let ops = 0
  const stop = performance.now() + ms
  const writer = async (w: number): Promise<void> => {
    while (performance.now() < stop) {
      const h = await mgr.begin()
      const buf = await h.get(16 + w)
      buf.writeUInt32LE(buf.readUInt32LE(0) + 1, 0)
      h.dirty(16 + w)
      mgr.end(h)
      await mgr.waitDurable(h.tid)
      ops++
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: n }, (_, w) => writer(w)))
  const secs = (performance.now() - start) / 1000
  await mgr.close()
  console.log(`${String(n).padStart(5)} writers  ${(ops / secs).toFixed(0).padStart(7)} durable ops/s  ${(log.commits / secs).toFixed(0).padStart(5)} commits/s  ${(ops / log.commits).toFixed(1).padStart(6)} ops/commit`)
}

async function cacheCost(bs: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  const N = 100_000
  const cache = new BufferCache(new MemoryDevice((N + 1) * bs), bs, Number.MAX_SAFE_INTEGER)
  await cache.load(0)
  gc()
  const m0 = process.memoryUsage()
  for (let b = 1; b <= N; b++) await cache.load(b)
  gc()
  const m1 = process.memoryUsage()
  const heap = (m1.heapUsed - m0.heapUsed + m1.external - m0.external - N * bs) / N
  const rss = (m1.rss - m0.rss - N * bs) / N
  console.log(`${bs}-byte blocks: ${heap.toFixed(0)} bytes heap+external, ${rss.toFixed(0)} bytes RSS per block beyond its data (${cache.stats.blocks} cached)`)
}

const args = process.argv.slice(2)
if (args[0] === 'cache') await cacheCost(Number(args[1] ?? BS))
else for (const n of args.length > 0 ? args.map(Number) : [1, 8, 64, 256]) await groupCommit(n)
