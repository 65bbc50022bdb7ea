import t from 'tap'
import { parseExports } from '../../../server/exports/parse.ts'
import { ClientMatcher } from '../../../server/exports/match.ts'
import type { HostResolver } from '../../../server/exports/resolver.ts'

/** A fake name service: forward and reverse tables, counting calls. */
function fakeResolver(forward: Record<string, string[]>, reverse: Record<string, string[]>) {
  const calls = { lookup: 0, reverse: 0 }
  const r: HostResolver = {
    async lookup(name) {
      calls.lookup++
      return forward[name] ?? []
    },
    async reverse(addr) {
      calls.reverse++
      return reverse[addr] ?? []
    },
  }
  return { r, calls }
}

function matcher(clients: string): ClientMatcher {
  const e = parseExports(`/x ${clients}\n`, 'x').exports[0]
  if (e === undefined) throw new Error('no export')
  return new ClientMatcher(e.clients)
}

const names = fakeResolver(
  { 'host1.lab': ['10.0.0.5'], 'ws.example.com': ['192.168.7.7'], 'liar.example.com': ['1.1.1.1'], 'v6.lab': ['fd00::5'] },
  { '192.168.7.7': ['WS.Example.COM.'], '10.9.9.9': ['liar.example.com'], '10.0.0.5': ['host1.lab'] },
)

t.test('addresses, networks and IPv4-mapped IPv6 peers', async (t) => {
  const m = matcher('10.1.2.3(rw) 192.168.0.0/16(ro) fd00::/8(rw) ::1(ro)')
  const who = async (a: string) => (await m.match(a, names.r))?.name ?? null
  t.equal(await who('10.1.2.3'), '10.1.2.3')
  t.equal(await who('::ffff:10.1.2.3'), '10.1.2.3')
  t.equal(await who('192.168.200.1'), '192.168.0.0/16')
  t.equal(await who('::ffff:192.168.0.9'), '192.168.0.0/16')
  t.equal(await who('fd12:3456::1'), 'fd00::/8')
  t.equal(await who('::1'), '::1')
  t.equal(await who('fe80::1%eth0'), null)
  t.equal(await who('10.1.2.4'), null)
  t.equal(await who('not-an-ip'), null)
  const odd = matcher('172.16.0.0/12 2001:db8::/33')
  t.equal((await odd.match('172.31.255.255', names.r))?.name, '172.16.0.0/12')
  t.equal(await odd.match('172.32.0.1', names.r), null)
  t.equal((await odd.match('2001:db8:7fff::1', names.r))?.name, '2001:db8::/33')
  t.equal(await odd.match('2001:db8:8000::1', names.r), null)
})

t.test('precedence: host > network > wildcard > *, then line order', async (t) => {
  const m = matcher('*(ro) *.example.com(rw) 192.168.0.0/16(rw,async) 192.168.7.0/24 ws.example.com(rw,crossmnt) 192.168.7.7')
  t.equal((await m.match('192.168.7.7', names.r))?.name, 'ws.example.com')
  t.equal((await m.match('192.168.7.8', names.r))?.name, '192.168.0.0/16')
  t.equal((await m.match('10.0.0.1', names.r))?.name, '*')
  const w = matcher('* *.example.com')
  t.equal((await w.match('192.168.7.7', names.r))?.name, '*.example.com')
})

t.test('wildcards use forward-confirmed reverse names, case-insensitively', async (t) => {
  const m = matcher('*.example.com(rw) host?.lab [a-z]s.*')
  t.equal((await m.match('192.168.7.7', names.r))?.name, '*.example.com')
  // liar.example.com does not resolve back to 10.9.9.9: not trusted.
  t.equal(await m.match('10.9.9.9', names.r), null)
  t.equal((await m.match('10.0.0.5', names.r))?.name, 'host?.lab')
  t.equal(await m.match('10.0.0.6', names.r), null)
  const neg = matcher('host[!1].lab ws.[^x]xample.com')
  t.equal(await neg.match('10.0.0.5', names.r), null)
  t.equal((await neg.match('192.168.7.7', names.r))?.name, 'ws.[^x]xample.com')
})

t.test('plain host names match by forward lookup', async (t) => {
  const m = matcher('host1.lab(rw) v6.lab')
  t.equal((await m.match('10.0.0.5', names.r))?.name, 'host1.lab')
  t.equal((await m.match('fd00::5', names.r))?.name, 'v6.lab')
  t.equal(await m.match('10.0.0.6', names.r), null)
})

t.test('no reverse lookup unless a wildcard spec needs it', async (t) => {
  const { r, calls } = fakeResolver({}, {})
  await matcher('10.0.0.0/8 *').match('10.0.0.1', r)
  await matcher('*').match('8.8.8.8', r)
  t.strictSame(calls, { lookup: 0, reverse: 0 })
})

t.test('check: secure needs a source port below 1024', async (t) => {
  const m = matcher('10.0.0.0/8(rw) *(ro,insecure)')
  t.match(await m.check({ address: '10.0.0.1', port: 1023 }, names.r), { ok: true, client: '10.0.0.0/8', options: { rw: true } })
  t.strictSame(await m.check({ address: '10.0.0.1', port: 1024 }, names.r), { ok: false, reason: 'insecure-port' })
  t.match(await m.check({ address: '8.8.8.8', port: 40000 }, names.r), { ok: true, client: '*', options: { rw: false } })
  const none = matcher('10.0.0.0/8')
  t.strictSame(await none.check({ address: '8.8.8.8', port: 700 }, names.r), { ok: false, reason: 'not-allowed' })
})
