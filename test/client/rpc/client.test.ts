import t from 'tap'
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import type { RemoteInfo } from 'node:dgram'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { xdr_uint, xdr_void } from '../../../xdr/runtime/codec.ts'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import { RpcUdpClient } from '../../../client/rpc/udp-client.ts'
import { decodeReply } from '../../../client/rpc/call.ts'
import { authSys } from '../../../client/rpc/auth.ts'
import { RpcError } from '../../../client/rpc/errors.ts'
import { P, TEST_PROG_NUMBER, callRecord, deferred, newHooks, startTestServer, words } from '../../helpers/rpc.ts'

const PROG = TEST_PROG_NUMBER

async function tcp(t: Test, port: number, timeoutMs = 10_000): Promise<RpcTcpClient> {
  const c = await RpcTcpClient.connect('127.0.0.1', port, { timeoutMs })
  t.teardown(() => c.close())
  return c
}

t.test('TCP: many calls in flight, matched by xid', async t => {
  const { port } = await startTestServer(t)
  const c = await tcp(t, port)
  const calls = Array.from({ length: 300 }, (_, i) => c.call(PROG, 1, i % 2 ? P.TESTPROC_WAIT : P.TESTPROC_ECHO, i % 2 ? 1 + (i % 7) : i))
  t.equal(c.inFlight, 300)
  const results = await Promise.all(calls)
  t.strictSame(results, Array.from({ length: 300 }, (_, i) => (i % 2 ? 1 + (i % 7) : i)))
  t.equal(c.inFlight, 0)
})

t.test('TCP: each RPC failure becomes an RpcError with a stable code', async t => {
  const { port } = await startTestServer(t)
  const c = await tcp(t, port)
  await t.rejects(c.call(300000, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_PROG_UNAVAIL' })
  await t.rejects(c.call(PROG, 2, P.TESTPROC_ECHO, 1), { code: 'RPC_PROG_MISMATCH', low: 1, high: 3 })
  await t.rejects(c.call(PROG, 1, { proc: 99, args: xdr_void, res: xdr_void }, undefined), { code: 'RPC_PROC_UNAVAIL' })
  await t.rejects(c.call(PROG, 1, { proc: 1, args: xdr_void, res: xdr_uint }, undefined), { code: 'RPC_GARBAGE_ARGS' })
  await t.rejects(c.call(PROG, 1, P.TESTPROC_FAIL, 0), { code: 'RPC_SYSTEM_ERR' })
  await t.rejects(c.call(PROG, 1, { proc: 1, args: xdr_uint, res: xdr_void }, 1), { code: 'RPC_BAD_REPLY' }, 'results with trailing bytes')
  t.equal(await c.call(PROG, 1, P.TESTPROC_WHOAMI, undefined, { cred: { uid: 33, gid: 44, gids: [1, 2], machinename: 'm' } }), 33)
  t.equal(await c.call(PROG, 1, P.TESTPROC_WHOAMI, undefined, { cred: 'none' }), 0xffff_ffff)
})

t.test('decodeReply maps denied replies', async t => {
  t.throws(() => { decodeReply(words(1, 1, 1, 0, 2, 2), xdr_void); }, { code: 'RPC_MISMATCH', low: 2, high: 2 })
  t.throws(() => { decodeReply(words(1, 1, 1, 1, 5), xdr_void); }, { code: 'RPC_AUTH_ERROR', authStat: 5 })
  t.throws(() => { decodeReply(words(1, 1, 7), xdr_void); }, { code: 'RPC_BAD_REPLY' })
  const err = t.throws(() => { decodeReply(words(1, 1, 0, 0, 0, 1), xdr_void); })
  t.ok(err instanceof RpcError)
  t.equal((err as RpcError).xid, 1)
})

t.test('authSys builds an AUTH_SYS credential (at most 16 gids)', async t => {
  const a = authSys({ uid: 1, gid: 2, gids: Array.from({ length: 20 }, (_, i) => i), machinename: 'h', stamp: 5 })
  t.equal(a.flavor, 1)
  t.strictSame(a.body, Buffer.concat([words(5, 1), Buffer.from('h\0\0\0'), words(1, 2, 16, ...Array.from({ length: 16 }, (_, i) => i))]))
})

t.test('TCP: timeout, and a late reply is ignored', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.gate = gate.promise
  const { port } = await startTestServer(t, { hooks })
  const c = await tcp(t, port)
  await t.rejects(c.call(PROG, 1, P.TESTPROC_WAIT, 0, { timeoutMs: 30 }), { code: 'RPC_TIMEOUT' })
  gate.resolve()
  while (hooks.finished.length === 0) await sleep(5)
  t.equal(await c.call(PROG, 1, P.TESTPROC_ECHO, 3), 3)
})

t.test('TCP: pending calls fail when the connection closes', async t => {
  const server = createServer(s => {
    s.once('data', () => s.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const c = await tcp(t, port)
  await t.rejects(c.call(PROG, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_CONNECTION_CLOSED' })
  await t.rejects(c.call(PROG, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_CONNECTION_CLOSED' }, 'and later calls too')
  await t.rejects(c.callRaw(Buffer.alloc(2)), RangeError)
  await t.rejects(RpcTcpClient.connect('127.0.0.1', 0), { code: 'RPC_CONNECTION_CLOSED' })
})

t.test('TCP: a reply over the receive limit fails its call with RPC_REPLY_TOO_LARGE; the others carry on', async t => {
  const { port } = await startTestServer(t)
  const c = await RpcTcpClient.connect('127.0.0.1', port, { timeoutMs: 10_000, maxRecordSize: 64 * 1024 })
  t.teardown(() => c.close())
  t.equal(c.maxReplySize, 64 * 1024)
  const before = c.call(PROG, 1, P.TESTPROC_WAIT, 20)
  const big = c.call(PROG, 1, P.TESTPROC_BYTES, 300_000)
  const after = c.call(PROG, 1, P.TESTPROC_ECHO, 7)
  const err = await big.then(() => null, (e: unknown) => e)
  t.ok(err instanceof RpcError, 'an RpcError')
  t.match(err, { code: 'RPC_REPLY_TOO_LARGE', message: /exceeds the receive limit of 65536/ })
  t.equal(await before, 20, 'a call sent before it is answered')
  t.equal(await after, 7, 'a call sent after it is answered')
  t.equal((await c.call(PROG, 1, P.TESTPROC_BYTES, 60_000)).length, 60_000, 'the connection still carries records up to the limit')
  c.maxReplySize = 512 * 1024
  t.equal((await c.call(PROG, 1, P.TESTPROC_BYTES, 300_000)).length, 300_000, 'a raised limit admits it')
})

t.test('TCP: a reply announcing 2 GiB fails its call as soon as its xid is in', async t => {
  const server = createServer(s => {
    s.once('data', (call: Buffer) => {
      // The call's xid follows its record mark.
      s.write(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), call.subarray(4, 8), Buffer.alloc(1000)]))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const c = await tcp(t, port)
  await t.rejects(c.call(PROG, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_REPLY_TOO_LARGE', message: /at least 2147483647 bytes/ })
  t.equal(c.inFlight, 0)
})

/** A UDP relay between client and server that drops the first `drop` datagrams from the client. */
async function droppingProxy(t: Test, serverPort: number, drop: number): Promise<{ port: number; seen: () => number }> {
  const sock = createSocket('udp4')
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  t.teardown(() => sock.close())
  let client: RemoteInfo | null = null
  let seen = 0
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port === serverPort) {
      if (client) sock.send(msg, client.port, client.address)
      return
    }
    client = rinfo
    seen++
    if (seen > drop) sock.send(msg, serverPort, '127.0.0.1')
  })
  return { port: sock.address().port, seen: () => seen }
}

t.test('UDP: a lost datagram is retransmitted with the same xid', async t => {
  const { port, hooks } = await startTestServer(t)
  const proxy = await droppingProxy(t, port, 1)
  const u = await RpcUdpClient.connect('127.0.0.1', proxy.port, { timeoutMs: 30, retries: 3 })
  t.teardown(() => u.close())
  t.equal(await u.call(PROG, 1, P.TESTPROC_INCR, 1), 2)
  t.equal(u.sent, 2)
  t.equal(proxy.seen(), 2)
  t.equal(hooks.executions, 1)
})

t.test('UDP: retransmissions of a non-idempotent call hit the DRC', async t => {
  const hooks = newHooks()
  const gate = deferred()
  hooks.incrGate = gate.promise
  const { port } = await startTestServer(t, { hooks })
  const u = await RpcUdpClient.connect('127.0.0.1', port, { timeoutMs: 20, retries: 10 })
  t.teardown(() => u.close())
  const result = u.call(PROG, 1, P.TESTPROC_INCR, 1)
  while (u.sent < 3) await sleep(5)
  gate.resolve()
  t.equal(await result, 2)
  t.equal(hooks.executions, 1, 'retransmissions while in progress were dropped')
})

t.test('UDP: gives up after its retries with RPC_TIMEOUT', async t => {
  const { port } = await startTestServer(t)
  const proxy = await droppingProxy(t, port, 1000)
  const u = await RpcUdpClient.connect('127.0.0.1', proxy.port, { timeoutMs: 5, retries: 2, maxTimeoutMs: 10 })
  t.teardown(() => u.close())
  await t.rejects(u.call(PROG, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_TIMEOUT' })
  t.equal(u.sent, 3)
  await t.rejects(u.callRaw(Buffer.alloc(1)), RangeError)
  const pending = u.callRaw(callRecord({ xid: 1, proc: 0 }), { timeoutMs: 10_000 })
  const closed = t.rejects(pending, { code: 'RPC_CONNECTION_CLOSED' })
  await u.close()
  await closed
  await t.rejects(u.call(PROG, 1, P.TESTPROC_ECHO, 1), { code: 'RPC_CONNECTION_CLOSED' })
  await u.close()
})

t.test('UDP hard: retransmits past its retries until a reply comes', async t => {
  const { port, hooks } = await startTestServer(t)
  const proxy = await droppingProxy(t, port, 4)
  const u = await RpcUdpClient.connect('127.0.0.1', proxy.port, { timeoutMs: 5, retries: 1, maxTimeoutMs: 10, hard: true })
  t.teardown(() => u.close())
  t.equal(u.protocol, 'udp')
  t.equal(await u.call(PROG, 1, P.TESTPROC_INCR, 1), 2)
  t.equal(u.sent, 5)
  t.strictSame(u.counters(), { retransmits: 4, reconnects: 0, timeouts: 4 })
  t.equal(hooks.executions, 1)
})
