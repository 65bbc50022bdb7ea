/*
 * Host names of outbound calls (server/callback/resolve.ts): IP literals
 * need no lookup; names go through at most MAX_LOOKUPS lookups at once, the
 * rest wait in order in a bounded queue; a waiting caller whose signal fires
 * leaves without its lookup ever starting; a failed lookup is
 * CALL_UNREACHABLE and frees its slot. The lookups here are held open by the
 * test (getaddrinfo cannot be made to hang on cue); one test resolves
 * through the real resolver.
 */
import t from 'tap'
import { MAX_LOOKUPS, NameResolver, hostResolver } from '../../../server/callback/resolve.ts'
import type { LookupFn } from '../../../server/callback/resolve.ts'

/** A lookup that answers only when the test says so, recording the names asked. */
function heldLookup(): { fn: LookupFn; asked: string[]; answer(host: string): void; fail(host: string): void } {
  const asked: string[] = []
  const open = new Map<string, { resolve: (v: { address: string; family: number }) => void; reject: (e: Error) => void }>()
  return {
    asked,
    fn: (host) => {
      asked.push(host)
      return new Promise((resolve, reject) => open.set(host, { resolve, reject }))
    },
    answer: (host) => {
      open.get(host)?.resolve({ address: '192.0.2.7', family: 4 })
    },
    fail: (host) => {
      open.get(host)?.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }))
    },
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

t.test('IP literals are answered without a lookup', async (t) => {
  const r = new NameResolver({ lookup: () => Promise.reject(new Error('no lookup expected')) })
  t.same(await r.resolve('127.0.0.1'), { address: '127.0.0.1', family: 4 })
  t.same(await r.resolve('::1'), { address: '::1', family: 6 })
})

t.test('at most two lookups at once; the others wait in order', async (t) => {
  const l = heldLookup()
  const r = new NameResolver({ lookup: l.fn })
  t.equal(MAX_LOOKUPS, 2)
  const names = ['a', 'b', 'c', 'd', 'e']
  const done = names.map((n) => r.resolve(n))
  await tick()
  t.same(l.asked, ['a', 'b'], 'two started')
  t.same(r.load, { running: 2, waiting: 3 })
  l.answer('b')
  t.same(await done[1], { address: '192.0.2.7', family: 4 })
  await tick()
  t.same(l.asked, ['a', 'b', 'c'], 'the first waiting one started when a slot freed')
  l.fail('a')
  await t.rejects(done[0] as Promise<unknown>, { code: 'CALL_UNREACHABLE', message: /cannot resolve a: getaddrinfo ENOTFOUND a/ })
  await tick()
  t.same(l.asked, ['a', 'b', 'c', 'd'], 'a failed lookup frees its slot too')
  for (const n of ['c', 'd']) l.answer(n)
  await tick()
  l.answer('e')
  await Promise.all(done.slice(2))
  t.same(r.load, { running: 0, waiting: 0 })
})

t.test('a waiting caller whose signal fires leaves without a lookup', async (t) => {
  const l = heldLookup()
  const r = new NameResolver({ lookup: l.fn })
  const first = [r.resolve('a'), r.resolve('b')]
  const ac = new AbortController()
  const waiting = r.resolve('gone', ac.signal)
  const after = r.resolve('c')
  await tick()
  t.same(r.load, { running: 2, waiting: 2 })
  ac.abort()
  await t.rejects(waiting, { code: 'CALL_ABORTED' })
  t.same(r.load, { running: 2, waiting: 1 }, 'out of the queue')
  l.answer('a')
  await first[0]
  await tick()
  t.same(l.asked, ['a', 'b', 'c'], '"gone" was never looked up')
  await t.rejects(r.resolve('x', ac.signal), { code: 'CALL_ABORTED' }, 'an aborted signal is refused at once')
  l.answer('b')
  l.answer('c')
  await Promise.all([first[1], after])
})

t.test('the queue is bounded', async (t) => {
  const l = heldLookup()
  const r = new NameResolver({ lookup: l.fn, maxWaiting: 3 })
  const held = ['a', 'b', 'c', 'd', 'e'].map((n) => r.resolve(n))
  await tick()
  t.same(r.load, { running: 2, waiting: 3 })
  await t.rejects(r.resolve('f'), { code: 'CALL_UNREACHABLE', message: /cannot resolve f: 3 name lookups already waiting/ })
  for (const n of ['a', 'b', 'c', 'd', 'e']) {
    l.answer(n)
    await tick()
  }
  await Promise.all(held)
  t.same(l.asked, ['a', 'b', 'c', 'd', 'e'], 'the refused name was never looked up')
})

t.test('the shared resolver resolves through getaddrinfo', async (t) => {
  const got = await hostResolver.resolve('localhost')
  t.ok(got.address === '127.0.0.1' || got.address === '::1', `localhost is ${got.address}`)
  await t.rejects(hostResolver.resolve('no-such-host.invalid'), { code: 'CALL_UNREACHABLE' }, 'RFC 6761: .invalid never resolves')
})
