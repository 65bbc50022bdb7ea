import t from 'tap'
import { CachingResolver, systemResolver, withTimeout, type HostResolver } from '../../../server/exports/resolver.ts'

t.test('CachingResolver caches answers and failures and shares in-flight lookups', async (t) => {
  const calls: string[] = []
  const inner: HostResolver = {
    async lookup(name) {
      calls.push(`f:${name}`)
      if (name === 'broken') throw new Error('SERVFAIL')
      return ['10.0.0.1']
    },
    async reverse(addr) {
      calls.push(`r:${addr}`)
      return ['h.lab']
    },
  }
  const c = new CachingResolver(inner)
  const [a, b] = await Promise.all([c.lookup('Host'), c.lookup('host')])
  t.strictSame(a, ['10.0.0.1'])
  t.strictSame(b, ['10.0.0.1'])
  t.strictSame(await c.lookup('broken'), [])
  t.strictSame(await c.lookup('broken'), [])
  t.strictSame(await c.reverse('10.0.0.1'), ['h.lab'])
  t.strictSame(await c.reverse('10.0.0.1'), ['h.lab'])
  t.strictSame(calls, ['f:Host', 'f:broken', 'r:10.0.0.1'])
})

t.test('withTimeout gives null for a hung or failed lookup', async (t) => {
  t.equal(await withTimeout(new Promise<string>(() => undefined), 10), null)
  t.equal(await withTimeout(Promise.reject(new Error('x')), 1000), null)
  t.equal(await withTimeout(Promise.resolve('ok'), 1000), 'ok')
})

t.test('systemResolver answers for loopback names and addresses without throwing', async (t) => {
  const addrs = await systemResolver.lookup('localhost')
  t.ok(addrs.some((a) => a === '127.0.0.1' || a === '::1'), `localhost -> ${addrs.join(',')}`)
  t.strictSame(await systemResolver.lookup('no-such-host.invalid'), [])
  const names = await systemResolver.reverse('127.0.0.1')
  t.ok(Array.isArray(names) && names.every((n) => typeof n === 'string' && n !== '127.0.0.1'))
  // A documentation address (RFC 5737) with no PTR: no names (or the numeric form, filtered out).
  t.ok((await systemResolver.reverse('192.0.2.1')).every((n) => n !== '192.0.2.1'))
})
