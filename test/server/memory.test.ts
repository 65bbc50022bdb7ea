/*
 * Memory bounded and given back (issue 11 §6): the idle watch, the duplicate
 * request cache's byte bound, a whole server whose pools fill under large
 * WRITEs and return to their floors once it has been idle, the memory
 * metrics, and the serve flags that size the pools.
 */
import t from 'tap'
import { NfsClient } from '../../client/index.ts'
import { DRC_ENTRY_COST, DuplicateRequestCache } from '../../server/rpc/drc.ts'
import { IdleWatch, collectGarbage } from '../../common/idle.ts'
import { MemoryReclaimer } from '../../server/memory.ts'
import { parseSize } from '../../cli/serve.ts'
import { startServer } from '../helpers/server.ts'
import { serveProcess, tsnfs } from '../cli/cli.ts'

const MiB = 1024 * 1024

/** Polls `cond` every 20 ms until it holds, failing after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('the idle watch fires once activity stands still, once per idle period, never while it moves', async (t) => {
  let activity = 0
  let fired = 0
  const w = new IdleWatch(100, () => activity, () => fired++)
  t.teardown(() => { w.stop() })
  await until(() => fired === 1, 5000, 'first idle period')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(fired, 1, 'not again while still idle')
  activity++
  await until(() => fired === 2, 5000, 'second idle period after activity')
  // An activity counter that moves at every look never counts as idle.
  let busy = 0
  let busyFired = 0
  const moving = new IdleWatch(50, () => ++busy, () => busyFired++)
  await new Promise((r) => setTimeout(r, 400))
  moving.stop()
  t.ok(busy > 2, `looked ${busy} times`)
  t.equal(busyFired, 0, 'busy: nothing trimmed')
})

t.test('the reclaimer trims every holder and counts what it let go', async (t) => {
  const r = new MemoryReclaimer({ gc: false })
  let a = 3000
  r.add({ name: 'a', kind: 'pool', bytes: () => a, trim: () => { const n = a - 1000; a = 1000; return n } })
  r.add({ name: 'b', kind: 'cache', bytes: () => 5, trim: () => 0 })
  t.equal(r.reclaim(), 2000)
  t.equal(a, 1000)
  t.strictSame(r.stats, { reclaims: 1, trimmedBytes: 2000 })
  t.equal(collectGarbage(), true, 'this process can collect garbage on demand')
})

t.test('the duplicate request cache is bounded in bytes; a large reply charges its size', async (t) => {
  const drc = new DuplicateRequestCache({ max: 1000, maxBytes: 4 * DRC_ENTRY_COST, ttlMs: 60_000 })
  for (let i = 0; i < 10; i++) {
    const k = `peer|${i}`
    t.equal(drc.begin(k).state, 'new')
    drc.complete(k, [Buffer.alloc(100, i)])
  }
  t.equal(drc.size, 4, 'four entries of the byte bound')
  t.equal(drc.bytes, 4 * DRC_ENTRY_COST)
  t.strictSame(drc.begin('peer|9'), { state: 'done', reply: Buffer.alloc(100, 9) }, 'the newest are kept')
  t.equal(drc.begin('peer|0').state, 'new', 'the oldest went')
  drc.complete('peer|0', [Buffer.alloc(2 * DRC_ENTRY_COST)])
  t.ok(drc.bytes <= 4 * DRC_ENTRY_COST, `bytes ${drc.bytes} within the bound`)
  t.equal(drc.size, 2, 'a reply of two entry costs pushed two others out')
  const expiring = new DuplicateRequestCache({ max: 10, maxBytes: 1 << 20, ttlMs: 30 })
  expiring.begin('x')
  expiring.complete('x', [Buffer.alloc(8)])
  await new Promise((r) => setTimeout(r, 60))
  t.equal(expiring.trim(), DRC_ENTRY_COST, 'expired entries are purged by trim()')
  t.equal(expiring.size, 0)
})

t.test('a server idle for idleMs trims its pools to their floors', async (t) => {
  // Long enough that the checks right after the last call see the pools still full.
  const idleMs = 3000
  const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n', { memory: { idleMs, gc: true }, metrics: { host: '127.0.0.1', port: 0 } })
  const c = await NfsClient.mount(s.url('/export'), { uid: 0, gid: 0, idleTrimMs: 0 })
  t.teardown(() => c.umount())
  const data = Buffer.alloc(8 * MiB, 7)
  await c.writeFile('/big', data)
  await c.unlink('/big')
  const bytes = (): Record<string, number> => Object.fromEntries(s.server.memory.holders.map((h) => [h.name, h.bytes()]))
  const before = bytes()
  t.equal(s.server.memory.stats.reclaims, 0, 'not idle yet')
  t.equal(before.chunks, 8 * MiB, 'the removed file\'s chunks wait in the pool')
  t.ok((before.record ?? 0) > 0, `1 MiB WRITEs left record buffers in the pool (${before.record ?? 0} bytes)`)
  t.ok((before.drc ?? 0) > 0, 'WRITE replies are in the duplicate request cache')
  await until(() => s.server.memory.stats.reclaims === 1, idleMs * 5, 'an idle reclaim')
  const after = bytes()
  t.equal(after.chunks, 0, 'chunk pool back to its floor')
  t.equal(after.record, 0, 'record pool back to its floor')
  t.equal(after.read, 0)
  t.equal(s.server.memory.stats.trimmedBytes, (before.chunks ?? 0) + (before.record ?? 0), 'what was trimmed is counted')
  const text = s.server.renderMetrics()
  t.match(text, /\ntsnfs_memory_pool_bytes\{pool="chunks"\} 0\n/)
  t.match(text, /\ntsnfs_memory_pool_bytes\{pool="record"\} 0\n/)
  t.match(text, /\ntsnfs_memory_reclaims_total 1\n/)
  t.match(text, /\nnodejs_external_memory_bytes \d+\n/)
  t.match(text, /\nnodejs_array_buffers_bytes \d+\n/)
  t.match(text, /\nnodejs_heap_space_size_bytes\{space="old_space"\} [1-9]\d*\n/)
  t.match(text, /\nnodejs_heap_space_used_bytes\{space="new_space"\} \d+\n/)
  t.match(text, /\ntsnfs_memory_cache_bytes\{cache="drc"\} \d+\n/)
  // Busy again: the pools fill again and the next idle period trims them again.
  await c.writeFile('/again', data)
  await c.unlink('/again')
  t.equal(bytes().chunks, 8 * MiB)
  await until(() => s.server.memory.stats.reclaims === 2, idleMs * 5, 'a second idle reclaim')
  t.equal(bytes().chunks, 0)
})

t.test('sizes on the command line', async (t) => {
  t.equal(parseSize('x', '0'), 0)
  t.equal(parseSize('x', '4096'), 4096)
  t.equal(parseSize('x', '64k'), 64 * 1024)
  t.equal(parseSize('x', '48M'), 48 * MiB)
  t.equal(parseSize('x', '2GiB'), 2 * 1024 * MiB)
  for (const bad of ['', 'M', '-1', '1.5M', '12x', '1T']) t.throws(() => parseSize('record-pool', bad), { message: /^--record-pool: not a size/ }, bad)
})

t.test('serve refuses a bad memory flag, and serves with good ones', async (t) => {
  const bad = await tsnfs(['serve', '--port', '0', '--state-dir', t.testdir({}), '--chunk-pool', 'lots'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /--chunk-pool: not a size in bytes/)
  const idle = await tsnfs(['serve', '--port', '0', '--state-dir', t.testdir({}), '--memory-idle', 'soon'])
  t.equal(idle.code, 1)
  t.match(idle.stderr, /--memory-idle: not a number of seconds/)
  const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', t.testdir({}), '--log-level', 'debug', '--no-rpcbind',
    '--record-pool', '4M', '--chunk-pool', '0', '--read-pool', '2M', '--drc-bytes', '1M', '--memory-idle', '0.5'])
  const c = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${s.port}&mountport=${s.port}`, { uid: 0, gid: 0, idleTrimMs: 0 })
  await c.writeFile('/f', Buffer.alloc(2 * MiB, 1))
  await c.umount()
  const line = await s.waitForLog(/idle: memory given back/)
  const logged = JSON.parse(line) as { trimmed: number; collected: boolean }
  t.equal(logged.collected, true, 'garbage collected')
  t.ok(logged.trimmed > 0 && logged.trimmed <= 4 * MiB, `trimmed ${logged.trimmed} bytes, within the 4M record pool`)
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0)
})
