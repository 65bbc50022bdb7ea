import t from 'tap'
import type { Test } from 'tap'
import { RpcUdpClient } from '../../../client/rpc/udp-client.ts'
import type { RpcUdpClientOptions } from '../../../client/rpc/udp-client.ts'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { silentLogger } from '../../../server/logger.ts'
import { P, TEST_PROG_NUMBER, callRecord, newHooks, startTestServer, testProgram, words } from '../../helpers/rpc.ts'

const PROG = TEST_PROG_NUMBER

async function udpClient(t: Test, port: number, opts: RpcUdpClientOptions = {}): Promise<RpcUdpClient> {
  const c = await RpcUdpClient.connect('127.0.0.1', port, { timeoutMs: 200, retries: 3, ...opts })
  t.teardown(() => c.close())
  return c
}

t.test('TCP and UDP answer on the same port', async t => {
  const { port, server } = await startTestServer(t)
  const u = await udpClient(t, port)
  t.equal(await u.call(PROG, 1, P.TESTPROC_ECHO, 41), 41)
  t.strictSame(await u.callRaw(callRecord({ xid: 3, proc: 0, args: words(1, 2) })), words(3, 1, 0, 0, 0, 0))
  const c = await RpcTcpClient.connect('127.0.0.1', port)
  t.teardown(() => c.close())
  t.equal(await c.call(PROG, 1, P.TESTPROC_ECHO, 42), 42)
  t.equal(server.stats.calls['200000/1/1'], 2)
})

t.test('DRC over UDP: same xid executes once, identical bytes', async t => {
  const { port, hooks } = await startTestServer(t)
  const u = await udpClient(t, port)
  const call = callRecord({ xid: 0xabc, proc: 3, args: words(1) })
  const first = await u.callRaw(call)
  const second = await u.callRaw(call)
  t.strictSame(first, words(0xabc, 1, 0, 0, 0, 0, 2))
  t.strictSame(second, first)
  t.equal(hooks.executions, 1)
  // The cache is per server, not per transport: the same call over TCP from the same address is a duplicate too.
  const c = await RpcTcpClient.connect('127.0.0.1', port)
  t.teardown(() => c.close())
  t.strictSame(await c.callRaw(call), first)
  t.equal(hooks.executions, 1)
})

t.test('oversize and garbage datagrams get no reply; the server keeps serving', async t => {
  const { port, server } = await startTestServer(t, { limits: { maxUdpDatagram: 200 } })
  const u = await udpClient(t, port, { timeoutMs: 30, retries: 1 })
  await t.rejects(u.callRaw(callRecord({ xid: 9, proc: 0, args: Buffer.alloc(300) })), { code: 'RPC_TIMEOUT' })
  t.equal(server.stats.udpDatagramsDropped, 2, 'the datagram and its retransmission')
  u.sendRaw(Buffer.from([1, 2, 3]))
  u.sendRaw(words(10, 1, 0, 0, 0, 0))
  t.equal(await u.call(PROG, 1, P.TESTPROC_ECHO, 5), 5)
  t.equal(server.stats.dropped, 2)
})

t.test('UDP: a reply too large for a datagram becomes SYSTEM_ERR', async t => {
  const { port } = await startTestServer(t)
  const u = await udpClient(t, port)
  t.equal((await u.call(PROG, 1, P.TESTPROC_BYTES, 60_000)).length, 60_000)
  await t.rejects(u.call(PROG, 1, P.TESTPROC_BYTES, 66_000), { code: 'RPC_SYSTEM_ERR' })
})

t.test('listen on a busy port fails; a second server can listen elsewhere', async t => {
  const { port } = await startTestServer(t)
  const other = new RpcServer({ programs: [testProgram(newHooks())], logger: silentLogger })
  await t.rejects(other.listen({ port, host: '127.0.0.1' }), { code: 'EADDRINUSE' })
  const { port: p2 } = await other.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => other.close())
  t.not(p2, port)
  await t.rejects(other.listen({ port: 0 }), /already listening/)
  const u = await udpClient(t, p2)
  t.equal(await u.call(PROG, 1, P.TESTPROC_ECHO, 1), 1)
})

t.test('listen without a host (dual stack)', async t => {
  const server = new RpcServer({ programs: [testProgram(newHooks())], logger: silentLogger })
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const u = await udpClient(t, port)
  t.equal(await u.call(PROG, 1, P.TESTPROC_WHOAMI, undefined, { cred: { uid: 7, gid: 8 } }), 7)
})

t.test('duplicate program numbers are refused', async t => {
  const p = testProgram(newHooks())
  t.throws(() => new RpcServer({ programs: [p, p], logger: silentLogger }), TypeError)
})
