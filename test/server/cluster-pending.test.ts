/*
 * A cluster export waiting for its database (server/cluster-pending.ts):
 * EAGAIN (NFS3ERR_JUKEBOX) for every operation until the opening succeeds,
 * then the real backend's answers; the handle key goes in just before the
 * backend serves; close() while an opening is in flight closes what that
 * opening brings, and stops the retries; its caches (the server's memory
 * holders) are the real backend's once it opened, none before.
 */
import t from 'tap'
import { PendingClusterVfs } from '../../server/cluster-pending.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { VfsError } from '../../vfs/errors.ts'
import type { Vfs, VfsCache } from '../../vfs/types.ts'

const down = (): Error => new VfsError('EAGAIN', 'connect ECONNREFUSED 127.0.0.1:1')

t.test('EAGAIN until the database answers, then the backend serves; the key goes in first', async (t) => {
  let attempts = 0
  let up = false
  const events: string[] = []
  const inner = new MemoryVfs()
  const warned: string[] = []
  const p = new PendingClusterVfs({
    what: 'export /shared',
    minDelayMs: 10,
    maxDelayMs: 20,
    log: { warn: (m) => { warned.push(m) } },
    open: () => {
      attempts++
      if (!up) return Promise.reject(down())
      return Promise.resolve({ vfs: inner, activate: () => { events.push(`key (ready=${String(p.ready)})`) } })
    },
  }, down())
  t.teardown(() => p.close())
  t.strictSame(p.root(), { id: 1n, gen: 1 }, 'the cluster root, before the database answers')
  await t.rejects(p.getattr(p.root()), { code: 'EAGAIN', message: /export \/shared: the cluster database has not been reached yet \(connect ECONNREFUSED/ })
  t.throws(() => p.capabilities(), { code: 'EAGAIN' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(attempts >= 2, `retried in the background (${attempts} attempts)`)
  t.equal(p.ready, false)
  up = true
  for (let i = 0; i < 100 && !p.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(p.ready, true, 'open once the database answers')
  t.strictSame(events, ['key (ready=false)'], 'the key went in just before the backend served')
  t.equal((await p.getattr(p.root())).type, 'dir', 'the real backend answers')
  t.match(warned[0], /^export \/shared: database not reachable \(connect ECONNREFUSED 127\.0\.0\.1:1\); serving NFS3ERR_JUKEBOX until it is/)
})

t.test('no caches until the backend opens, then the backend\'s own', async (t) => {
  let up = false
  const blocks: VfsCache = { name: 'blocks', bytes: () => 42, trim: () => 0 }
  const inner = Object.assign(new MemoryVfs(), { caches: (): readonly VfsCache[] => [blocks] })
  const p = new PendingClusterVfs({
    what: 'export /shared',
    minDelayMs: 10,
    maxDelayMs: 20,
    log: { warn: () => undefined },
    open: () => (up ? Promise.resolve({ vfs: inner, activate: () => undefined }) : Promise.reject(down())),
  }, down())
  t.teardown(() => p.close())
  t.strictSame(p.caches(), [], 'none while the database is not reached')
  up = true
  for (let i = 0; i < 100 && !p.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(p.ready, true)
  t.equal(p.caches()[0], blocks, 'the real backend\'s caches once it serves')
  t.equal(p.caches().length, 1)
})

t.test('close() during an opening closes what it brings and stops the retries', async (t) => {
  let release: (() => void) | undefined
  let closed = 0
  let attempts = 0
  const inner = new MemoryVfs()
  const counted: Vfs = new Proxy(inner, {
    get(target, prop): unknown {
      if (prop === 'close') return () => { closed++; return target.close() }
      const v: unknown = Reflect.get(target, prop)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
  let activated = false
  const p = new PendingClusterVfs({
    what: 'export /x',
    minDelayMs: 5,
    open: () => {
      attempts++
      return new Promise((resolve) => {
        release = () => { resolve({ vfs: counted, activate: () => { activated = true } }) }
      })
    },
  }, down())
  for (let i = 0; i < 100 && release === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const closing = p.close()
  release?.()
  await closing
  t.equal(closed, 1, 'the backend that arrived after close() was closed')
  t.equal(activated, false, 'and never served: its key never went in')
  t.equal(p.ready, false)
  const n = attempts
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(attempts, n, 'no attempts after close()')
})
