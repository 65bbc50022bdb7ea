/*
 * The RPC layer's resource limits (issue 7 §2), each on its own small server:
 * requests in flight in total, connections in total and per address, the
 * idle timeout, the record receive deadline (slowloris), and a peer that never
 * reads its replies. No timing assertions: waits poll for a state, with
 * generous deadlines.
 */
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import type { Logger } from '../../../server/logger.ts'
import { silentLogger } from '../../../server/logger.ts'
import { udpExchange, udpSocket } from '../../helpers/e2e.ts'
import { P, RawConnection, TEST_PROG_NUMBER, callRecord, deferred, framed, newHooks, startTestServer, words } from '../../helpers/rpc.ts'

const PROG = TEST_PROG_NUMBER
const WAIT = '200000/1/2'
const BYTES = '200000/1/5'

/** Poll until `cond` holds; fail after `ms` (generous: the machine may be loaded). */
async function until(t: Test, what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) {
      t.fail(`timed out waiting for: ${what}`)
      throw new Error(`timed out waiting for: ${what}`)
    }
    await sleep(10)
  }
}

/** Poll until `value()` has not changed for `quietMs`. */
async function settled(value: () => number, quietMs = 500): Promise<number> {
  let last = value()
  let since = Date.now()
  for (;;) {
    await sleep(25)
    const v = value()
    if (v !== last) {
      last = v
      since = Date.now()
    } else if (Date.now() - since >= quietMs) {
      return v
    }
  }
}

/** One ECHO call over a connection dialled from `localAddress`; the reply record (no mark). */
async function echoFrom(t: Test, port: number, localAddress: string, xid: number, n: number): Promise<Buffer> {
  const socket = netConnect({ port, host: '127.0.0.1', localAddress })
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.write(echo(xid, n))
  let got = Buffer.alloc(0)
  for await (const chunk of socket) {
    got = Buffer.concat([got, chunk as Buffer])
    if (got.length >= 4 + 28) break
  }
  return got.subarray(4, 4 + 28)
}

const echo = (xid: number, n: number): Buffer => framed(callRecord({ xid, proc: 1, args: words(n) }))

/** A logger that records warn messages. */
function recordingLogger(warnings: string[]): Logger {
  const log: Logger = {
    ...silentLogger,
    warn: (a: object | string, b?: string) => {
      warnings.push(typeof a === 'string' ? a : (b ?? ''))
    },
    child: () => log,
  }
  return log
}

t.test('requests in flight in total: capped across connections; UDP calls above the cap are dropped', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port, server } = await startTestServer(t, { hooks, limits: { maxInFlightTotal: 3, maxInFlightPerConnection: 8 } })
  const a = await RawConnection.open(t, port)
  const b = await RawConnection.open(t, port)
  const waits = (base: number): Buffer => Buffer.concat(Array.from({ length: 5 }, (_, i) => framed(callRecord({ xid: base + i, proc: 2, args: words(0) }))))
  a.send(waits(100))
  b.send(waits(200))
  await until(t, 'three handlers running', () => hooks.running === 3)
  // Give the other records every chance to start if the cap did not hold.
  await settled(() => server.stats.calls[WAIT] ?? 0)
  t.equal(hooks.running, 3, 'no more than the total cap run at once')
  t.equal(server.stats.calls[WAIT], 3, 'the other calls wait unread or in a backlog')

  const u = await udpSocket(t)
  const dropped = await udpExchange(u, port, callRecord({ xid: 7, proc: 1, args: words(1) }), 300)
  t.equal(dropped, null, 'a UDP call above the cap gets no answer')
  t.equal(server.stats.udpOverloadDrops, 1)

  gate.resolve()
  const ra = await a.waitFor(5)
  const rb = await b.waitFor(5)
  t.strictSame(ra.map(r => r.readUInt32BE(0)).sort(), [100, 101, 102, 103, 104])
  t.strictSame(rb.map(r => r.readUInt32BE(0)).sort(), [200, 201, 202, 203, 204])
  t.equal(hooks.maxRunning, 3)
  t.strictSame(await udpExchange(u, port, callRecord({ xid: 8, proc: 1, args: words(1) }), 10_000), words(8, 1, 0, 0, 0, 0, 1), 'UDP answered again')
})

t.test('connections in total: more are closed at once, counted, and logged once per address', async t => {
  const warnings: string[] = []
  const { port, server } = await startTestServer(t, { limits: { maxConnections: 2 }, logger: recordingLogger(warnings) })
  const a = await RawConnection.open(t, port)
  const b = await RawConnection.open(t, port)
  a.send(echo(1, 1))
  b.send(echo(2, 2))
  await a.waitFor(1)
  await b.waitFor(1)
  for (let i = 0; i < 3; i++) {
    const c = await RawConnection.open(t, port)
    c.send(echo(3, 3))
    await c.closed
    t.equal(c.records.length, 0, `refused connection ${i} got no reply`)
  }
  t.equal(server.stats.connectionsRefused, 3)
  t.equal(server.stats.connectionsAccepted, 2)
  t.equal(warnings.filter(w => w.includes('connection refused')).length, 1, 'logged once for the address')
  a.socket.destroy()
  await until(t, 'the closed connection to be released', () => server.stats.connectionsOpen === 1)
  const d = await RawConnection.open(t, port)
  d.send(echo(4, 4))
  t.strictSame((await d.waitFor(1))[0], words(4, 1, 0, 0, 0, 0, 4), 'a place freed is taken again')
})

t.test('connections per client address: the limit is per address, other addresses still connect', async t => {
  const { port, server } = await startTestServer(t, { limits: { maxConnectionsPerClient: 1 } })
  const a = await RawConnection.open(t, port)
  a.send(echo(1, 1))
  await a.waitFor(1)
  const again = await RawConnection.open(t, port)
  await again.closed
  t.equal(server.stats.connectionsRefused, 1, 'a second connection from 127.0.0.1 is refused')
  t.strictSame(await echoFrom(t, port, '127.0.0.2', 2, 2), words(2, 1, 0, 0, 0, 0, 2), '127.0.0.2 is served')
  t.equal(server.stats.connectionsRefused, 1)
})

t.test('idle connections are closed after the timeout; one with a request in flight is not idle', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port, server } = await startTestServer(t, { hooks, limits: { idleTimeoutMs: 200 } })
  const silent = await RawConnection.open(t, port)
  const used = await RawConnection.open(t, port)
  used.send(echo(1, 1))
  await used.waitFor(1)
  const busy = await RawConnection.open(t, port)
  busy.send(framed(callRecord({ xid: 9, proc: 2, args: words(0) })))
  await silent.closed
  await used.closed
  t.pass('a connection that never sent anything and one that went quiet are closed')
  t.equal(server.stats.connectionsIdleClosed, 2)
  // Several timeouts' worth, measured by the server's own sweep: the busy connection stays.
  await sleep(1000)
  t.equal(hooks.running, 1, 'the busy call is still running')
  gate.resolve()
  t.strictSame((await busy.waitFor(1))[0], words(9, 1, 0, 0, 0, 0, 0), 'the long call is answered')
  await busy.closed
  t.equal(server.stats.connectionsIdleClosed, 3, 'and once answered and quiet, it is closed too')
})

t.test('slowloris: a record trickled a byte at a time is cut at its deadline; others are served', async t => {
  const { port, server } = await startTestServer(t, { limits: { recordTimeoutMs: 300, idleTimeoutMs: 0 } })
  const slow = await RawConnection.open(t, port)
  const record = echo(5, 5)
  let sent = 0
  const trickle = setInterval(() => {
    if (sent < record.length && !slow.socket.destroyed) slow.socket.write(record.subarray(sent, ++sent))
  }, 50)
  t.teardown(() => {
    clearInterval(trickle)
  })
  const stuck = await RawConnection.open(t, port)
  stuck.send(record.subarray(0, 6))
  const fine = await RawConnection.open(t, port)
  fine.send(echo(6, 6))
  t.strictSame((await fine.waitFor(1))[0], words(6, 1, 0, 0, 0, 0, 6))
  await slow.closed
  await stuck.closed
  clearInterval(trickle)
  t.ok(sent < record.length, `closed before the record was complete (${sent} of ${record.length} bytes)`)
  t.equal(slow.records.length, 0)
  t.equal(server.stats.recordTimeouts, 2, 'the trickling and the half-sent record both hit the deadline')
  t.equal(server.stats.connectionsIdleClosed, 0)
  const c = await RpcTcpClient.connect('127.0.0.1', port)
  t.teardown(() => c.close())
  t.equal(await c.call(PROG, 1, P.TESTPROC_ECHO, 7), 7, 'whole records arriving normally are unaffected')
})

t.test('a peer that never reads its replies: the server stops taking its calls; memory bounded; others served', async t => {
  const { port, server } = await startTestServer(t)
  const mem0 = process.memoryUsage().arrayBuffers
  const raw = await RawConnection.open(t, port)
  raw.socket.pause()
  const calls = 400
  raw.send(Buffer.concat(Array.from({ length: calls }, (_, i) => framed(callRecord({ xid: i + 1, proc: 5, args: words(1 << 20) })))))
  await until(t, 'the server to start', () => (server.stats.calls[BYTES] ?? 0) > 0)
  const taken = await settled(() => server.stats.calls[BYTES] ?? 0)
  const grown = process.memoryUsage().arrayBuffers - mem0
  t.ok(taken <= 2 * 64, `the server took ${taken} of ${calls} calls of 1 MiB, then stopped reading`)
  t.ok(grown < 256 * 1024 * 1024, `buffers grew by ${(grown / 2 ** 20).toFixed(0)} MiB for ${calls} MiB asked`)

  const other = await RpcTcpClient.connect('127.0.0.1', port, { timeoutMs: 30_000 })
  t.teardown(() => other.close())
  t.equal(await other.call(PROG, 1, P.TESTPROC_ECHO, 11), 11, 'another client is served')
  t.equal((await other.call(PROG, 1, P.TESTPROC_BYTES, 1 << 20)).length, 1 << 20, 'including large replies')

  // Once the peer reads, every call is answered, in bounded steps.
  let bytes = 0
  raw.socket.removeAllListeners('data')
  raw.socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length
  })
  raw.socket.resume()
  const expected = calls * ((1 << 20) + 4 + 24 + 4)
  await until(t, 'every reply to arrive', () => bytes >= expected, 120_000)
  t.equal(bytes, expected, 'all replies arrived')
  t.equal(server.stats.calls[BYTES], calls + 1)
})

t.test('a peer that never reads and goes quiet is closed by the idle timeout', async t => {
  const { port, server } = await startTestServer(t, { limits: { idleTimeoutMs: 300 } })
  const raw = await RawConnection.open(t, port)
  raw.socket.pause()
  raw.send(Buffer.concat(Array.from({ length: 50 }, (_, i) => framed(callRecord({ xid: i + 1, proc: 5, args: words(1 << 20) })))))
  // The peer does not read, so it may never see the close itself: watch the server's side.
  await until(t, 'the stuck connection to be closed', () => server.stats.connectionsIdleClosed === 1)
  await until(t, 'its resources to be released', () => server.stats.connectionsOpen === 0)
  t.equal(server.stats.connectionsOpen, 0)
})
