import t from 'tap'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import { P, RawConnection, TEST_PROG_NUMBER, callRecord, deferred, framed, newHooks, startTestServer, words } from '../../helpers/rpc.ts'

const PROG = TEST_PROG_NUMBER

async function client(t: Test, port: number): Promise<RpcTcpClient> {
  const c = await RpcTcpClient.connect('127.0.0.1', port, { timeoutMs: 10_000 })
  t.teardown(() => c.close())
  return c
}

t.test('a slow request does not delay a fast one sent after it', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port } = await startTestServer(t, { hooks })
  const c = await client(t, port)
  const order: string[] = []
  const slow = c.call(PROG, 1, P.TESTPROC_WAIT, 0).then(v => order.push(`slow ${v}`))
  const fast = await c.call(PROG, 1, P.TESTPROC_ECHO, 7)
  order.push(`fast ${fast}`)
  gate.resolve()
  await slow
  t.strictSame(order, ['fast 7', 'slow 0'])
  t.strictSame(hooks.finished, ['ECHO 7', 'WAIT 0'])
})

t.test('the in-flight cap bounds concurrently running handlers', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port, server } = await startTestServer(t, { hooks, limits: { maxInFlightPerConnection: 4 } })
  const raw = await RawConnection.open(t, port)
  // All 20 calls in one write: the cap must hold even for records that arrive together.
  raw.send(Buffer.concat(Array.from({ length: 20 }, (_, i) => framed(callRecord({ xid: i + 1, proc: 2, args: words(0) })))))
  while (hooks.running < 4) await sleep(5)
  await sleep(50)
  t.equal(hooks.running, 4, 'running handlers stop at the cap')
  gate.resolve()
  const replies = await raw.waitFor(20)
  t.equal(replies.length, 20)
  t.equal(hooks.maxRunning, 4)
  t.strictSame(new Set(replies.map(r => r.readUInt32BE(0))).size, 20, 'every xid answered once')
  t.equal(server.stats.calls['200000/1/2'], 20)
})

t.test('replies are coalesced and can be large', async t => {
  const { port, server } = await startTestServer(t)
  const c = await client(t, port)
  const results = await Promise.all([
    c.call(PROG, 1, P.TESTPROC_BYTES, 200_000),
    ...Array.from({ length: 50 }, (_, i) => c.call(PROG, 1, P.TESTPROC_ECHO, i)),
    c.call(PROG, 1, P.TESTPROC_BYTES, 3),
  ])
  t.equal((results[0]).length, 200_000)
  t.ok((results[0]).every(b => b === 0xab))
  t.strictSame(results.slice(1, 51), Array.from({ length: 50 }, (_, i) => i))
  t.strictSame(results[51], Buffer.alloc(3, 0xab))
  t.ok(server.stats.bytesOut > 200_000)
  t.ok(server.stats.bytesIn > 52 * 44)
})

t.test('DRC over TCP: replayed after a reconnect, byte for byte', async t => {
  const { port, hooks, server } = await startTestServer(t)
  const call = callRecord({ xid: 0x5150, proc: 3, args: words(10) })
  const a = await client(t, port)
  const first = await a.callRaw(call)
  const second = await a.callRaw(call)
  await a.close()
  const b = await client(t, port)
  const third = await b.callRaw(call)
  t.strictSame(first, words(0x5150, 1, 0, 0, 0, 0, 11))
  t.strictSame(second, first)
  t.strictSame(third, first)
  t.equal(hooks.executions, 1)
  t.equal(server.stats.drcHits, 2)
})

t.test('DRC over TCP: a duplicate arriving while the original runs gets no reply', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.incrGate = gate.promise
  const { port } = await startTestServer(t, { hooks })
  const raw = await RawConnection.open(t, port)
  const call = framed(callRecord({ xid: 77, proc: 3, args: words(1) }))
  raw.send(Buffer.concat([call, call]))
  while (hooks.executions < 1) await sleep(5)
  gate.resolve()
  await raw.waitFor(1)
  // Anything the duplicate produced would arrive before the reply to a later call.
  raw.send(framed(callRecord({ xid: 78, proc: 1, args: words(5) })))
  const replies = await raw.waitFor(2)
  t.strictSame(replies, [words(77, 1, 0, 0, 0, 0, 2), words(78, 1, 0, 0, 0, 0, 5)])
  t.equal(hooks.executions, 1)
})

t.test('a stray REPLY is ignored and the connection keeps serving', async t => {
  const { port } = await startTestServer(t)
  const raw = await RawConnection.open(t, port)
  raw.send(framed(words(5, 1, 0, 0, 0, 0)))
  raw.send(framed(Buffer.alloc(2)))
  raw.send(framed(callRecord({ xid: 6, proc: 0 })))
  t.strictSame(await raw.waitFor(1), [words(6, 1, 0, 0, 0, 0)])
})

t.test('hostile input closes only the offending connection', async t => {
  const { port, server } = await startTestServer(t, { limits: { maxRecordSize: 4096 } })
  const bystander = await client(t, port)

  const huge = await RawConnection.open(t, port)
  huge.send(Buffer.from([0x80, 0x00, 0x10, 0x01]))
  await huge.closed
  t.equal(server.stats.framingErrors, 1, 'record mark over the limit closes the connection')

  const truncated = await RawConnection.open(t, port)
  truncated.send(Buffer.concat([Buffer.from([0x80, 0, 0, 100]), Buffer.alloc(10)]))
  truncated.socket.end()
  await truncated.closed
  t.pass('truncated record then close')

  const random = await RawConnection.open(t, port)
  random.send(randomBytes(64 * 1024))
  random.socket.end()
  await random.closed
  t.pass('random bytes')

  t.equal(await bystander.call(PROG, 1, P.TESTPROC_ECHO, 9), 9, 'an existing client is still served')
  const fresh = await client(t, port)
  t.equal(await fresh.call(PROG, 1, P.TESTPROC_ECHO, 10), 10, 'a new client is served')
})

t.test('a half-closed client still gets its replies', async t => {
  const hooks = newHooks()
  const { port } = await startTestServer(t, { hooks })
  const raw = await RawConnection.open(t, port)
  raw.send(framed(callRecord({ xid: 1, proc: 2, args: words(20) })))
  raw.send(framed(callRecord({ xid: 2, proc: 1, args: words(3) })))
  raw.socket.end()
  await raw.closed
  t.strictSame(
    raw.records.map(r => r.readUInt32BE(0)),
    [2, 1],
  )
})

t.test('close() drops connections and aborts their signal', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port, server } = await startTestServer(t, { hooks })
  const c = await client(t, port)
  const pending = c.call(PROG, 1, P.TESTPROC_WAIT, 0)
  while (hooks.running < 1) await sleep(5)
  t.equal(server.stats.connectionsOpen, 1)
  t.equal(hooks.signals[0]?.aborted, false)
  const rejected = t.rejects(pending, { code: 'RPC_CONNECTION_CLOSED' })
  await server.close()
  await rejected
  t.equal(hooks.signals[0]?.aborted, true, 'CallContext.signal fired')
  t.equal(server.stats.connectionsOpen, 0)
  gate.resolve()
})

t.test('a client that does not read its replies stops the server reading its calls', async t => {
  const { port, server } = await startTestServer(t)
  const raw = await RawConnection.open(t, port)
  raw.socket.pause()
  raw.send(Buffer.concat(Array.from({ length: 8 }, (_, i) => framed(callRecord({ xid: i + 1, proc: 5, args: words(1 << 20) })))))
  while ((server.stats.calls['200000/1/5'] ?? 0) < 8) await sleep(5)
  await sleep(50)
  raw.send(framed(callRecord({ xid: 100, proc: 1, args: words(1) })))
  await sleep(50)
  t.equal(server.stats.calls['200000/1/1'], undefined, 'the later call was not read while replies were backed up')
  raw.socket.resume()
  const replies = await raw.waitFor(9)
  t.equal(replies.length, 9)
  t.equal(server.stats.calls['200000/1/1'], 1)
})
