import { createServer, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { NdmpClientError, NdmpConnection } from '../../../client/ndmp/connection.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { RecordReader } from '../../../xdr/record.ts'
import { NDMP_MAX_MESSAGE, decodeBody, encodeMessage, parseMessage, type NdmpMessage } from '../../../xdr/ndmp/message.ts'
import { startTestNdmp } from '../../server/ndmp/helpers.ts'

/*
 * The DMA-side connection against hand-made NDMP peers on real sockets: greetings refused or
 * missing, replies late, wrong, undecodable or oversize, connections dropped mid-call.
 */

type Behaviour = (socket: Socket, request: NdmpMessage, reply: (code: number, error: number, body: Buffer) => void) => void

/** A peer that greets with `greeting` (null: never) and answers requests through `behave`. */
async function peer(t: Test, greeting: { reason: 0 | 1 | 2; version: number } | null, behave: Behaviour): Promise<number> {
  let seq = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    const reader = new RecordReader(NDMP_MAX_MESSAGE)
    const send = (type: number, code: number, replyTo: number, error: number, body: Buffer): void => {
      seq++
      for (const c of encodeMessage({ sequence: seq, time_stamp: 0, message_type: type, message_code: code, reply_sequence: replyTo, error_code: error }, null, undefined)) socket.write(c.length === 4 ? lengthMark(24 + body.length) : c)
      socket.write(body)
    }
    if (greeting !== null) {
      const b = Buffer.alloc(12)
      b.writeUInt32BE(greeting.reason, 0)
      b.writeUInt32BE(greeting.version, 4)
      send(0, 0x502, 0, 0, b)
    }
    socket.on('data', (chunk: Buffer) => {
      for (const r of reader.push(chunk)) {
        const m = parseMessage(r)
        if (m === null) continue
        // CONNECT_OPEN always succeeds here; everything else is the test's.
        if (m.header.message_code === 0x900) send(1, 0x900, m.header.sequence, 0, Buffer.alloc(4))
        else behave(socket, m, (code, error, body) => { send(1, code, m.header.sequence, error, body) })
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => { resolve() })
    for (const s of sockets) s.destroy()
  }))
  const a = server.address()
  return typeof a === 'object' && a !== null ? a.port : 0
}

function lengthMark(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE((0x80000000 | n) >>> 0)
  return b
}

async function rejects(t: Test, p: Promise<unknown>, code: string, what: string): Promise<NdmpClientError | null> {
  const err = await p.then(() => null, (e: unknown) => e)
  t.ok(err instanceof NdmpClientError, `${what}: NdmpClientError`)
  if (!(err instanceof NdmpClientError)) return null
  t.equal(err.code, code, `${what}: ${code}`)
  return err
}

const HOST_INFO = v4.ndmp4_message.NDMP4_CONFIG_GET_HOST_INFO

t.test('connecting: nobody listening, a refusal, no greeting, an offer of v3', async (t) => {
  const closed = await peer(t, null, () => undefined)
  // A port nobody listens on: take one from a server we close at once.
  const gone = createServer()
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r))
  const a = gone.address()
  const deadPort = typeof a === 'object' && a !== null ? a.port : 0
  await new Promise<void>((r) => gone.close(() => { r() }))
  await rejects(t, NdmpConnection.connect({ host: '127.0.0.1', port: deadPort }), 'NDMP_CONNECT', 'nobody listening')
  await rejects(t, NdmpConnection.connect({ host: '127.0.0.1', port: closed, timeoutMs: 300 }), 'NDMP_TIMEOUT', 'no greeting')
  const refused = await peer(t, { reason: 2, version: 4 }, () => undefined)
  await rejects(t, NdmpConnection.connect({ host: '127.0.0.1', port: refused }), 'NDMP_REFUSED', 'NOTIFY REFUSED')
  const v3only = await peer(t, { reason: 0, version: 3 }, () => undefined)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: v3only })
  t.equal(c.offered, 3)
  t.equal(c.version, 3, 'the client opens the version offered')
  c.destroy()
})

t.test('calls: header and body errors, timeouts (a late reply is dropped), wrong and undecodable replies', async (t) => {
  const port = await peer(t, { reason: 0, version: 4 }, (_s, m, reply) => {
    const op = m.header.message_code
    if (op === 0x2000_0001) reply(op, 4, Buffer.alloc(0)) // header error
    else if (op === 0x2000_0002) reply(op, 0, u32(9)) // body error (an ndmp4_config_set_ext_list_reply)
    else if (op === 0x2000_0003) setTimeout(() => { reply(op, 0, u32(0)) }, 400) // late
    else if (op === 0x2000_0004) reply(0x2000_0099, 0, u32(0)) // names another message
    else if (op === 0x2000_0005) reply(op, 0, Buffer.alloc(2)) // short body
    else reply(op, 0, u32(0))
  })
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port, timeoutMs: 200 })
  t.teardown(() => { c.destroy() })
  const call = (code: number): Promise<unknown> => c.call(code, null, undefined, v4.ndmp4_config_set_ext_list_reply)
  const h = await rejects(t, call(0x2000_0001), 'NDMP_HEADER_ERROR', 'header error')
  t.equal(h?.ndmpError, 4)
  const b = await rejects(t, call(0x2000_0002), 'NDMP_REPLY_ERROR', 'body error')
  t.equal(b?.ndmpError, 9)
  t.same(b?.reply, { error: 9 }, 'the decoded body comes along')
  await rejects(t, call(0x2000_0003), 'NDMP_TIMEOUT', 'no reply in time')
  await new Promise((r) => setTimeout(r, 400))
  t.same(await call(0x2000_0006), { error: 0 }, 'the late reply was dropped; the next call gets its own')
  await rejects(t, call(0x2000_0004), 'NDMP_PROTOCOL', 'a reply naming another message')
  await rejects(t, call(0x2000_0005), 'NDMP_PROTOCOL', 'an undecodable reply')
  const raw = await c.callRaw(0x2000_0001, null, undefined)
  t.equal(raw.header.error_code, 4, 'callRaw leaves errors to the caller')
})

t.test('the connection failing: dropped mid-call, an oversize message; posts reach listeners until removed', async (t) => {
  const port = await peer(t, { reason: 0, version: 4 }, (s, m, reply) => {
    const op = m.header.message_code
    if (op === 0x2000_0010) s.destroy()
    else if (op === 0x2000_0011) s.write(lengthMark(0x7fff_ffff))
    else if (op === 0x2000_0012) {
      // Two posts, then the reply.
      for (const entry of ['one', 'two']) {
        const body = { log_type: 0 as const, message_id: 1, entry, associated_message_valid: 0 as const, associated_message_sequence: 0 }
        for (const ch of encodeMessage({ sequence: 99, time_stamp: 0, message_type: 0, message_code: 0x603, reply_sequence: 0, error_code: 0 }, v4.ndmp4_log_message_post, body)) s.write(ch)
      }
      reply(op, 0, u32(0))
    }
  })
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port })
  const seen: string[] = []
  const stop = c.onPost((p) => seen.push(`${p.code.toString(16)}:${decodeBody(v4.ndmp4_log_message_post, p.body).entry}`))
  await c.call(0x2000_0012, null, undefined, v4.ndmp4_config_set_ext_list_reply)
  t.same(seen, ['603:one', '603:two'], 'posts before the reply reach the listener')
  stop()
  await c.call(0x2000_0012, null, undefined, v4.ndmp4_config_set_ext_list_reply)
  t.equal(seen.length, 2, 'a removed listener hears nothing')
  await rejects(t, c.call(0x2000_0010, null, undefined, v4.ndmp4_config_set_ext_list_reply), 'NDMP_CLOSED', 'the peer dropped the connection')
  await rejects(t, c.call(0x2000_0012, null, undefined, v4.ndmp4_config_set_ext_list_reply), 'NDMP_CLOSED', 'later calls')

  const d = await NdmpConnection.connect({ host: '127.0.0.1', port })
  await rejects(t, d.call(0x2000_0011, null, undefined, v4.ndmp4_config_set_ext_list_reply), 'NDMP_PROTOCOL', 'an oversize message')
  d.destroy()
})

t.test('against our server: close() sends CONNECT_CLOSE and the server lets go of the session', async (t) => {
  const srv = await startTestNdmp(t)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  await c.auth({ type: 'text', user: 'backup', password: 'tape-s3cret' })
  t.equal(srv.sessions, 1)
  await c.close()
  for (let i = 0; i < 50 && srv.sessions > 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(srv.sessions, 0)
  await rejects(t, c.call(HOST_INFO, null, undefined, v4.ndmp4_config_get_host_info_reply), 'NDMP_CLOSED', 'a call after close')
})

function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}
