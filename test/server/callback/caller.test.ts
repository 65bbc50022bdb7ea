/*
 * The server's outbound caller over real sockets: a test program served by
 * the project's RpcServer answers; RPC-level errors come back with their
 * exact status; silence times out (UDP retransmits with the same xid); a
 * closed port is unreachable; a peer that closes, one that answers garbage,
 * and one that announces an oversized reply fail with their own codes.
 */
import t from 'tap'
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { PeerCallError, callPeer, isTransient, sendOneWay } from '../../../server/callback/caller.ts'
import type { PeerCall } from '../../../server/callback/caller.ts'
import { xdr_uint, xdr_void } from '../../../xdr/runtime/codec.ts'
import { P, TEST_PROG_NUMBER, deferred, startTestServer, xdr_bytes } from '../../helpers/rpc.ts'
import { closedPort } from '../../helpers/ports.ts'

const ECHO = P.TESTPROC_ECHO.proc
const at = (port: number, transport: 'udp' | 'tcp', proc: number, extra: Partial<PeerCall> = {}): PeerCall => ({
  host: '127.0.0.1', port, transport, prog: TEST_PROG_NUMBER, vers: 1, proc, ...extra,
})

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`${transport}: a call, RPC errors with their status, a timeout`, async (t) => {
    const { port, hooks } = await startTestServer(t)
    t.equal(await callPeer(at(port, transport, ECHO), xdr_uint, 42, xdr_uint), 42, 'ECHO answers')
    t.equal((await callPeer(at(port, transport, P.TESTPROC_BYTES.proc), xdr_uint, 3, xdr_bytes)).length, 3, 'an opaque result')

    await t.rejects(callPeer(at(port, transport, 0, { prog: 300099 }), xdr_void, undefined, xdr_void), { code: 'CALL_RPC_ERROR', status: 'PROG_UNAVAIL' })
    await t.rejects(callPeer(at(port, transport, 99), xdr_void, undefined, xdr_void), { code: 'CALL_RPC_ERROR', status: 'PROC_UNAVAIL' })
    await t.rejects(callPeer(at(port, transport, 0, { vers: 2 }), xdr_void, undefined, xdr_void), { code: 'CALL_RPC_ERROR', status: 'PROG_MISMATCH', reply: { low: 1, high: 3 } })
    await t.rejects(callPeer(at(port, transport, P.TESTPROC_FAIL.proc), xdr_uint, 1, xdr_void), { code: 'CALL_RPC_ERROR', status: 'SYSTEM_ERR' })
    // An ECHO whose result codec wants more than the reply holds.
    await t.rejects(callPeer(at(port, transport, ECHO), xdr_uint, 1, xdr_bytes), { code: 'CALL_BAD_REPLY' })

    const gate = deferred()
    hooks.gate = gate.promise
    t.teardown(() => {
      gate.resolve()
    })
    const started = performance.now()
    await t.rejects(callPeer(at(port, transport, P.TESTPROC_WAIT.proc), xdr_uint, 0, xdr_uint, { timeoutMs: 150, retries: 1 }), { code: 'CALL_TIMEOUT' })
    t.ok(performance.now() - started >= 290, 'two tries of 150 ms each')
    // UDP retransmits to the same socket; TCP reconnects: either way the server saw the call twice.
    t.equal(hooks.signals.length, 2, 'the call was sent twice')
  })

  t.test(`${transport}: a closed port is unreachable at once; an aborted call stops`, async (t) => {
    const port = await closedPort()
    const started = performance.now()
    await t.rejects(callPeer(at(port, transport, ECHO), xdr_uint, 1, xdr_uint, { timeoutMs: 5000 }), { code: 'CALL_UNREACHABLE' })
    t.ok(performance.now() - started < 2000, 'without waiting for the timeout')

    const { port: live, hooks } = await startTestServer(t)
    const gate = deferred()
    hooks.gate = gate.promise
    t.teardown(() => {
      gate.resolve()
    })
    const ctl = new AbortController()
    setTimeout(() => {
      ctl.abort()
    }, 50)
    await t.rejects(callPeer(at(live, transport, P.TESTPROC_WAIT.proc), xdr_uint, 0, xdr_uint, { signal: ctl.signal }), { code: 'CALL_ABORTED' })
    await t.rejects(callPeer(at(live, transport, ECHO), xdr_uint, 0, xdr_uint, { signal: ctl.signal }), { code: 'CALL_ABORTED' }, 'already aborted')
  })

  t.test(`${transport}: sendOneWay delivers a call without waiting for its reply`, async (t) => {
    const { port, hooks } = await startTestServer(t)
    const gate = deferred()
    hooks.gate = gate.promise
    t.teardown(() => {
      gate.resolve()
    })
    await sendOneWay(at(port, transport, P.TESTPROC_WAIT.proc), xdr_uint, 0)
    for (let i = 0; i < 100 && hooks.signals.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
    t.equal(hooks.signals.length, 1, 'the server got the call (and is still holding it)')
  })

  t.test(`${transport}: replies larger than the cap are refused`, async (t) => {
    const { port } = await startTestServer(t)
    await t.rejects(callPeer(at(port, transport, P.TESTPROC_BYTES.proc), xdr_uint, 2000, xdr_bytes, { maxReplyBytes: 1024 }), { code: 'CALL_REPLY_TOO_LARGE' })
    t.equal((await callPeer(at(port, transport, P.TESTPROC_BYTES.proc), xdr_uint, 900, xdr_bytes, { maxReplyBytes: 1024 })).length, 900, 'under the cap')
  })
}

/** A TCP peer that handles each connection's first bytes with `onData`. */
async function rawTcpPeer(t: Test, onData: (socket: Socket, chunk: Buffer) => void): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => undefined)
    s.once('data', (chunk: Buffer) => {
      onData(s, chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => { resolve() })))
  const a = server.address()
  return typeof a === 'object' && a !== null ? a.port : 0
}

/** A record with the call's xid and then `body`. */
function replyTo(call: Buffer, body: Buffer): Buffer {
  const rec = Buffer.concat([call.subarray(4, 8), body])
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x8000_0000 | rec.length) >>> 0)
  return Buffer.concat([mark, rec])
}

t.test('tcp: a peer that closes, one that answers garbage, one that announces 1 GiB', async (t) => {
  const closes = await rawTcpPeer(t, (s) => s.destroy())
  await t.rejects(callPeer(at(closes, 'tcp', ECHO), xdr_uint, 1, xdr_uint), { code: 'CALL_CLOSED' })

  // msg_type 7: not a REPLY.
  const garbage = await rawTcpPeer(t, (s, call) => s.write(replyTo(call, Buffer.from([0, 0, 0, 7, 1, 2, 3, 4]))))
  await t.rejects(callPeer(at(garbage, 'tcp', ECHO), xdr_uint, 1, xdr_uint), { code: 'CALL_BAD_REPLY', message: /msg_type 7 is not REPLY/ })

  const huge = await rawTcpPeer(t, (s) => s.write(Buffer.from([0xc0, 0, 0, 0])))
  await t.rejects(callPeer(at(huge, 'tcp', ECHO), xdr_uint, 1, xdr_uint), { code: 'CALL_REPLY_TOO_LARGE' })

  // A reply to another xid is not ours: the call waits for its own, then times out.
  const stray = await rawTcpPeer(t, (s) => s.write(Buffer.from([0x80, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1])))
  await t.rejects(callPeer(at(stray, 'tcp', ECHO), xdr_uint, 1, xdr_uint, { timeoutMs: 100 }), { code: 'CALL_TIMEOUT' })
})

t.test('udp: a peer that answers garbage', async (t) => {
  const s = createSocket('udp4')
  s.on('message', (msg, rinfo) => {
    s.send(Buffer.concat([msg.subarray(0, 4), Buffer.from([0, 0, 0, 1, 0, 0, 0, 9])]), rinfo.port, rinfo.address)
  })
  s.bind(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(() => {
    s.close()
  })
  // A REPLY whose reply_stat is 9.
  await t.rejects(callPeer(at(s.address().port, 'udp', ECHO), xdr_uint, 1, xdr_uint), { code: 'CALL_BAD_REPLY', message: /reply_stat 9/ })
})

t.test('a host name that does not resolve is unreachable', async (t) => {
  await t.rejects(callPeer({ ...at(111, 'udp', 0), host: 'no-such-host.invalid' }, xdr_void, undefined, xdr_void, { timeoutMs: 2000 }), { code: 'CALL_UNREACHABLE' })
})

t.test('host names resolve; a source address we do not have is unreachable; isTransient', async (t) => {
  const { port } = await startTestServer(t)
  t.equal(await callPeer({ ...at(port, 'udp', ECHO), host: 'localhost' }, xdr_uint, 5, xdr_uint), 5, 'udp to localhost')
  t.equal(await callPeer(at(port, 'udp', ECHO), xdr_uint, 6, xdr_uint, { localAddress: '127.0.0.5' }), 6, 'from another loopback address')
  for (const transport of ['udp', 'tcp'] as const) {
    const err = await callPeer(at(port, transport, ECHO), xdr_uint, 1, xdr_uint, { localAddress: '192.0.2.254' }).catch((e: unknown) => e)
    t.match(err, { code: 'CALL_UNREACHABLE' }, `${transport}: binding 192.0.2.254 fails`)
    t.equal(isTransient(err), true)
  }
  t.equal(isTransient(new PeerCallError('CALL_RPC_ERROR', 'x')), false)
  t.equal(isTransient(new Error('x')), false)
})
