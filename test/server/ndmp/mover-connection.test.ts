import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { DataConnectionError, connectTcp, ipv4ToU32, listenTcp, localDataPort, u32ToIpv4 } from '../../../server/ndmp/mover/connection.ts'
import type { DataEndpoint } from '../../../server/ndmp/mover/connection.ts'

const seed = Number(process.env.SEED ?? Date.now() % 100000)

/** Writes `total` bytes in chunks of varying size; returns their hash. */
async function produce(ep: DataEndpoint, total: number): Promise<string> {
  const h = createHash('sha256')
  let left = total
  let n = seed
  while (left > 0) {
    n = (n * 1103515245 + 12345) % 2 ** 31
    const size = Math.min(left, 1 + (n % 200000))
    const chunk = randomBytes(size)
    h.update(chunk)
    await ep.write(chunk)
    left -= size
  }
  await ep.end()
  return h.digest('hex')
}

async function consume(ep: DataEndpoint, slow = false): Promise<{ hash: string; bytes: number; largest: number }> {
  const h = createHash('sha256')
  let bytes = 0
  let largest = 0
  for (;;) {
    const b = await ep.read(65536)
    if (b === null) break
    largest = Math.max(largest, b.length)
    h.update(b)
    bytes += b.length
    if (slow && bytes % 7 === 0) await new Promise((r) => setTimeout(r, 1))
  }
  return { hash: h.digest('hex'), bytes, largest }
}

t.comment(`seed ${seed}`)

t.test('IPv4 <-> u_long as NDMP carries it', async (t) => {
  t.equal(ipv4ToU32('127.0.0.1'), 0x7f000001)
  t.equal(ipv4ToU32('255.255.255.255'), 0xffffffff)
  t.equal(u32ToIpv4(0xc0a80102), '192.168.1.2')
  t.throws(() => ipv4ToU32('::1'), { code: 'DATA_CONN_BAD_ADDRESS' })
})

t.test('TCP: a listener, one peer, 20 MB each way with backpressure', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1' })
  t.equal(l.addresses.length, 1)
  t.equal(l.addresses[0]?.host, '127.0.0.1')
  const [a, b] = await Promise.all([l.accept(), connectTcp(l.addresses)])
  t.equal(a.kind, 'tcp')
  t.match(b.peer, /^127\.0\.0\.1:\d+$/)
  const [sent, got] = await Promise.all([produce(b, 20_000_000), consume(a, true)])
  t.equal(got.bytes, 20_000_000)
  t.equal(got.hash, sent)
  t.ok(got.largest <= 65536, 'a read never returns more than asked')
  t.equal(a.bytesRead, 20_000_000n)
  t.equal(b.bytesWritten, 20_000_000n)
  // The other direction (a restore): the listener's side writes.
  const [sent2, got2] = await Promise.all([produce(a, 3_000_000), consume(b)])
  t.equal(got2.hash, sent2)
  t.strictSame(await a.closed, { error: undefined })
  t.strictSame(await b.closed, { error: undefined })
  await t.rejects(a.write(Buffer.from('x')), { code: 'DATA_CONN_CLOSED' })
})

t.test('TCP: a second peer is refused; close() is seen by the other side', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1' })
  const first = await connectTcp(l.addresses)
  const a = await l.accept()
  await t.rejects(connectTcp(l.addresses, { timeoutMs: 500 }), { code: 'DATA_CONN_REFUSED' })
  await first.write(Buffer.from('hello'))
  t.equal((await a.read(100))?.toString(), 'hello')
  const pending = a.read(100)
  first.close()
  t.equal(await pending, null, 'the reader sees end of stream')
  await t.rejects(first.write(Buffer.from('x')), { code: 'DATA_CONN_CLOSED' })
  // The peer's writes fail once the transport notices (EPIPE/RESET or CLOSED).
  let err: unknown = null
  for (let i = 0; i < 100 && err === null; i++) {
    try {
      await a.write(Buffer.alloc(65536))
      await new Promise((r) => setTimeout(r, 5))
    } catch (e) {
      err = e
    }
  }
  t.ok(err instanceof DataConnectionError, 'a write to a closed peer fails')
  t.match((err as DataConnectionError).code, /^DATA_CONN_(CLOSED|RESET)$/)
  a.close()
  await a.closed
})

t.test('TCP: connect failures and a closed listener', async (t) => {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => { r(); }))
  await t.rejects(connectTcp([{ host: '127.0.0.1', port }], { timeoutMs: 1000 }), { code: 'DATA_CONN_REFUSED' })
  await t.rejects(connectTcp([]), { code: 'DATA_CONN_BAD_ADDRESS' })
  await t.rejects(connectTcp([{ host: 'localhost', port: 1 }]), { code: 'DATA_CONN_BAD_ADDRESS' })
  await t.rejects(connectTcp([{ host: '127.0.0.1', port: 70000 }]), { code: 'DATA_CONN_BAD_ADDRESS' })
  const ac = new AbortController()
  ac.abort()
  await t.rejects(connectTcp([{ host: '127.0.0.1', port }], { signal: ac.signal }), { code: 'DATA_CONN_ABORTED' })
  const l = await listenTcp({ host: '127.0.0.1' })
  const waiting = l.accept()
  l.close()
  await t.rejects(waiting, { code: 'DATA_CONN_CLOSED' })
  await t.rejects(l.accept(), { code: 'DATA_CONN_CLOSED' })
  await t.rejects(listenTcp({ host: 'nonsense' }), { code: 'DATA_CONN_BAD_ADDRESS' })
  const wild = await listenTcp({ host: '0.0.0.0' })
  t.ok(wild.addresses.some((a) => a.host === '127.0.0.1'), 'the wildcard answers loopback too')
  t.not(wild.addresses[0]?.host.startsWith('127.') && wild.addresses.length > 1, true, 'loopback is last')
  wild.close()
  const only = await listenTcp({ host: '127.0.0.1', allowFrom: ['10.9.9.9'] })
  const stranger = await connectTcp(only.addresses)
  t.equal(await stranger.read(10), null, 'a peer not allowed is closed at once')
  stranger.close()
  only.close()
})

t.test('LOCAL: one session rendezvous; stream both ways; close semantics', async (t) => {
  const session = {}
  const port = localDataPort(session)
  t.equal(localDataPort(session), port, 'one port per session')
  t.throws(() => port.connect(), { code: 'DATA_CONN_REFUSED' })
  const l = port.listen()
  t.equal(port.listening, true)
  t.throws(() => port.listen(), { code: 'DATA_CONN_BUSY' })
  const b = port.connect()
  const a = await l.accept()
  t.equal(port.listening, false)
  t.equal(a.kind, 'local')
  const [sent, got] = await Promise.all([produce(b, 8_000_000), consume(a, true)])
  t.equal(got.hash, sent)
  const [sent2, got2] = await Promise.all([produce(a, 100_000), consume(b)])
  t.equal(got2.hash, sent2)
  t.strictSame(await a.closed, { error: undefined })
  await t.rejects(a.write(Buffer.from('x')), { code: 'DATA_CONN_ENDED' })

  const l2 = port.listen()
  const d = port.connect()
  const c = await l2.accept()
  await d.write(Buffer.from('tail'))
  const blocked = d.write(Buffer.alloc(2 * 1024 * 1024))
  c.close()
  await t.rejects(blocked, { code: 'DATA_CONN_CLOSED' }, 'a writer blocked on a full pipe is released by the close')
  await t.rejects(d.write(Buffer.from('x')), { code: 'DATA_CONN_CLOSED' })
  await t.rejects(c.read(10), { code: 'DATA_CONN_CLOSED' }, 'the closed side cannot read')
  await d.closed
  const l3 = port.listen()
  l3.close()
  await t.rejects(l3.accept(), { code: 'DATA_CONN_CLOSED' })
  const l4 = port.listen()
  const f = port.connect()
  const e = await l4.accept()
  await f.write(Buffer.from('abc'))
  f.close()
  t.equal((await e.read(2))?.toString(), 'ab', 'what was sent before a close is still read')
  t.equal((await e.read(2))?.toString(), 'c')
  t.equal(await e.read(2), null)
})
