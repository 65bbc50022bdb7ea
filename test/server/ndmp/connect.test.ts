import t, { type Test } from 'tap'
import { NdmpClientError, NdmpConnection } from '../../../client/ndmp/connection.ts'
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../../xdr/ndmp/message.ts'
import { ndmpMd5Digest } from '../../../xdr/ndmp/md5.ts'
import { NdmpError, type NdmpService } from '../../../server/ndmp/service-types.ts'
import { PASSWORD, RawPeer, USER, startTestNdmp } from './helpers.ts'

/* CONNECT and CONFIG over real sockets: what a DMA sees of our NDMP server (v4 and v3). */

const M = v4.ndmp4_message
const E = v4.ndmp4_error

async function rejectsNdmp(t: Test, p: Promise<unknown>, code: string, ndmpError: number | null, what: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof NdmpClientError, `${what}: rejects with NdmpClientError`)
  if (err instanceof NdmpClientError) {
    t.equal(err.code, code, `${what}: ${code}`)
    t.equal(err.ndmpError, ndmpError, `${what}: NDMP error ${String(ndmpError)}`)
  }
}

t.test('the greeting: NOTIFY_CONNECTION_STATUS CONNECTED offering version 4, as a request with sequence 1', async (t) => {
  const srv = await startTestNdmp(t)
  const raw = await RawPeer.open(srv.port)
  const m = await raw.next()
  t.ok(m !== null)
  if (m === null) return
  t.equal(m.header.message_type, 0, 'a request (a post)')
  t.equal(m.header.message_code, M.NDMP4_NOTIFY_CONNECTION_STATUS)
  t.equal(m.header.sequence, 1)
  t.equal(m.header.reply_sequence, 0)
  const body = decodeBody(v4.ndmp4_notify_connection_status_post, m.body)
  t.same(body, { reason: v4.ndmp4_connection_status_reason.NDMP4_CONNECTED, protocol_version: 4, text_reason: '' })
  raw.destroy()
})

t.test('v4: text auth, then every CONFIG call answers with our configuration', async (t) => {
  const srv = await startTestNdmp(t)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  t.teardown(() => { c.destroy() })
  t.equal(c.offered, 4)
  t.equal(c.version, 4)
  await c.auth({ type: 'text', user: USER, password: PASSWORD })

  const host = await c.call(M.NDMP4_CONFIG_GET_HOST_INFO, null, undefined, v4.ndmp4_config_get_host_info_reply)
  t.equal(host.error, E.NDMP4_NO_ERR)
  t.ok(host.hostname.length > 0, 'hostname')
  t.match(host.hostid, /^[0-9a-f]{8}$/, 'hostid: 8 hex digits')

  const server = await c.call(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined, v4.ndmp4_config_get_server_info_reply)
  t.same(server, { error: 0, vendor_name: 'tsnfs', product_name: 'tsnfs NDMP data and tape service', revision_number: '1.2.3', auth_type: [1, 2] })

  const conn = await c.call(M.NDMP4_CONFIG_GET_CONNECTION_TYPE, null, undefined, v4.ndmp4_config_get_connection_type_reply)
  t.same(conn.addr_types, [v4.ndmp4_addr_type.NDMP4_ADDR_LOCAL, v4.ndmp4_addr_type.NDMP4_ADDR_TCP])

  const bu = await c.call(M.NDMP4_CONFIG_GET_BUTYPE_INFO, null, undefined, v4.ndmp4_config_get_butype_info_reply)
  t.equal(bu.butype_info.length, 1)
  t.equal(bu.butype_info[0]?.butype_name, 'tar')
  const attrs = bu.butype_info[0]?.attrs ?? 0
  for (const bit of [v4.NDMP4_BUTYPE_BACKUP_FH_FILE, v4.NDMP4_BUTYPE_BACKUP_INCREMENTAL, v4.NDMP4_BUTYPE_RECOVER_FILELIST, v4.NDMP4_BUTYPE_RECOVER_DIRECT]) {
    t.ok((attrs & bit) !== 0, `tar attrs has 0x${bit.toString(16)}`)
  }
  t.ok(bu.butype_info[0]?.default_env.some((p) => p.name === 'HIST' && p.value === 'y'), 'default env HIST=y')

  const fs = await c.call(M.NDMP4_CONFIG_GET_FS_INFO, null, undefined, v4.ndmp4_config_get_fs_info_reply)
  t.equal(fs.fs_info.length, 1)
  const f = fs.fs_info[0]
  t.equal(f?.fs_logical_device, '/mem')
  t.equal(f?.fs_type, 'memory')
  t.equal(f?.unsupported, 0)
  t.ok((f?.total_size ?? 0n) > 0n && (f?.avail_size ?? 0n) <= (f?.total_size ?? 0n), 'sizes from fsstat')
  t.same(f?.fs_env, [{ name: 'BACKEND', value: 'memory' }, { name: 'SNAPSHOT', value: 'n' }])

  const tape = await c.call(M.NDMP4_CONFIG_GET_TAPE_INFO, null, undefined, v4.ndmp4_config_get_tape_info_reply)
  t.equal(tape.tape_info.length, 1)
  t.match(tape.tape_info[0]?.caplist[0]?.device, /\/tape0$/)
  t.equal(tape.tape_info[0]?.model, 'tsnfs virtual tape')

  const scsi = await c.call(M.NDMP4_CONFIG_GET_SCSI_INFO, null, undefined, v4.ndmp4_config_get_scsi_info_reply)
  t.same(scsi, { error: 0, scsi_info: [] })
  const ext = await c.call(M.NDMP4_CONFIG_GET_EXT_LIST, null, undefined, v4.ndmp4_config_get_ext_list_reply)
  t.same(ext, { error: 0, class_list: [] })
  const setNone = await c.call(M.NDMP4_CONFIG_SET_EXT_LIST, v4.ndmp4_config_set_ext_list_request, { ndmp_selected_ext: [] }, v4.ndmp4_config_set_ext_list_reply)
  t.equal(setNone.error, 0)
  await rejectsNdmp(t, c.call(M.NDMP4_CONFIG_SET_EXT_LIST, v4.ndmp4_config_set_ext_list_request, { ndmp_selected_ext: [{ class_id: 0x7ff0, class_version: 1 }] }, v4.ndmp4_config_set_ext_list_reply), 'NDMP_REPLY_ERROR', E.NDMP4_CLASS_NOT_SUPPORTED, 'selecting an extension')
  // Not offered: SCSI and CONNECT_SERVER_AUTH.
  await rejectsNdmp(t, c.call(M.NDMP4_SCSI_OPEN, v4.ndmp4_scsi_open_request, { device: '/dev/sg0' }, v4.ndmp4_scsi_open_reply), 'NDMP_HEADER_ERROR', E.NDMP4_NOT_SUPPORTED_ERR, 'SCSI_OPEN')
  await rejectsNdmp(t, c.call(M.NDMP4_CONNECT_SERVER_AUTH, v4.ndmp4_connect_server_auth_request, { client_attr: { auth_type: 1 } }, v4.ndmp4_connect_server_auth_reply), 'NDMP_REPLY_ERROR', E.NDMP4_NOT_SUPPORTED_ERR, 'SERVER_AUTH')
  await c.close()
})

t.test('v3: MD5 auth (a password with colons), then CONFIG with the v3 bodies', async (t) => {
  const srv = await startTestNdmp(t)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port, version: 3 })
  t.teardown(() => { c.destroy() })
  t.equal(c.version, 3)
  await c.auth({ type: 'md5', user: 'other', password: 'pw:with:colons' })
  const M3 = v3.ndmp3_message
  const fs = await c.call(M3.NDMP3_CONFIG_GET_FS_INFO, null, undefined, v3.ndmp3_config_get_fs_info_reply)
  t.equal(fs.fs_info[0]?.fs_logical_device, '/mem')
  t.equal(fs.fs_info[0]?.invalid, 0)
  const bu = await c.call(M3.NDMP3_CONFIG_GET_BUTYPE_INFO, null, undefined, v3.ndmp3_config_get_butype_info_reply)
  t.ok(((bu.butype_info[0]?.attrs ?? 0) & v3.NDMP3_BUTYPE_BACKUP_FILE_HISTORY) !== 0, 'v3 tar has BACKUP_FILE_HISTORY')
  const server = await c.call(M3.NDMP3_CONFIG_GET_SERVER_INFO, null, undefined, v3.ndmp3_config_get_server_info_reply)
  t.same(server.auth_type, [1, 2])
  // v4-only messages are not part of v3.
  await rejectsNdmp(t, c.call(M.NDMP4_CONFIG_GET_EXT_LIST, null, undefined, v4.ndmp4_config_get_ext_list_reply), 'NDMP_HEADER_ERROR', v3.ndmp3_error.NDMP3_NOT_SUPPORTED_ERR, 'GET_EXT_LIST in v3')
  await c.close()
})

t.test('the MD5 digest: the SDK layout (password, challenge at 64 - pwlen, password at the end); only 32 bytes of password count', async (t) => {
  const challenge = Buffer.alloc(64, 0xab)
  const a = ndmpMd5Digest(challenge, 'x'.repeat(32))
  const b = ndmpMd5Digest(challenge, `${'x'.repeat(32)}ignored`)
  t.same(a, b, 'bytes past 32 do not count')
  // The layout by hand for "pw": p w 0... then the challenge from 62, then "pw" at 126.
  const msg = Buffer.alloc(128)
  msg.write('pw', 0)
  challenge.copy(msg, 62)
  msg.write('pw', 126)
  const { createHash } = await import('node:crypto')
  t.same(ndmpMd5Digest(challenge, 'pw'), createHash('md5').update(msg).digest())
  t.throws(() => ndmpMd5Digest(Buffer.alloc(10), 'pw'), RangeError)
})

t.test('bad credentials: NOT_AUTHORIZED in the reply body; the third failure closes the connection', async (t) => {
  const srv = await startTestNdmp(t)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  await rejectsNdmp(t, c.auth({ type: 'text', user: USER, password: 'wrong' }), 'NDMP_REPLY_ERROR', E.NDMP4_NOT_AUTHORIZED_ERR, 'wrong text password')
  await rejectsNdmp(t, c.auth({ type: 'md5', user: USER, password: 'wrong' }), 'NDMP_REPLY_ERROR', E.NDMP4_NOT_AUTHORIZED_ERR, 'wrong md5 password')
  await rejectsNdmp(t, c.auth({ type: 'text', user: 'nobody', password: PASSWORD }), 'NDMP_REPLY_ERROR', E.NDMP4_NOT_AUTHORIZED_ERR, 'unknown user')
  await rejectsNdmp(t, c.call(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined, v4.ndmp4_config_get_server_info_reply), 'NDMP_CLOSED', null, 'after three failures')
  c.destroy()

  // MD5 without a challenge first, and a challenge used twice.
  const d = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  t.teardown(() => { d.destroy() })
  const digest = ndmpMd5Digest(Buffer.alloc(64), PASSWORD)
  const md5 = { auth_data: { auth_type: 2 as const, auth_md5: { auth_id: USER, auth_digest: digest } } }
  await rejectsNdmp(t, d.call(M.NDMP4_CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, md5, v4.ndmp4_connect_client_auth_reply), 'NDMP_REPLY_ERROR', E.NDMP4_NOT_AUTHORIZED_ERR, 'MD5 with no challenge')
  const attr = await d.call(M.NDMP4_CONFIG_GET_AUTH_ATTR, v4.ndmp4_config_get_auth_attr_request, { auth_type: 2 }, v4.ndmp4_config_get_auth_attr_reply)
  t.equal(attr.server_attr.auth_type, 2)
  if (attr.server_attr.auth_type !== 2) return
  const good = { auth_data: { auth_type: 2 as const, auth_md5: { auth_id: USER, auth_digest: ndmpMd5Digest(attr.server_attr.challenge, PASSWORD) } } }
  const ok = await d.call(M.NDMP4_CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, good, v4.ndmp4_connect_client_auth_reply)
  t.equal(ok.error, 0, 'the right digest authorizes')
  // AUTH_NONE is not offered.
  await rejectsNdmp(t, d.call(M.NDMP4_CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, { auth_data: { auth_type: 0 } }, v4.ndmp4_connect_client_auth_reply), 'NDMP_REPLY_ERROR', E.NDMP4_ILLEGAL_ARGS_ERR, 'AUTH_NONE')
})

t.test('before authorization only CONNECT, SERVER_INFO and AUTH_ATTR answer; everything else (known or not) is NOT_AUTHORIZED', async (t) => {
  const srv = await startTestNdmp(t)
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  t.teardown(() => { c.destroy() })
  const server = await c.call(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined, v4.ndmp4_config_get_server_info_reply)
  t.equal(server.vendor_name, 'tsnfs')
  const text = await c.call(M.NDMP4_CONFIG_GET_AUTH_ATTR, v4.ndmp4_config_get_auth_attr_request, { auth_type: 1 }, v4.ndmp4_config_get_auth_attr_reply)
  t.same(text.server_attr, { auth_type: 1 })
  for (const [name, code] of [['HOST_INFO', M.NDMP4_CONFIG_GET_HOST_INFO], ['FS_INFO', M.NDMP4_CONFIG_GET_FS_INFO], ['TAPE_INFO', M.NDMP4_CONFIG_GET_TAPE_INFO], ['BUTYPE_INFO', M.NDMP4_CONFIG_GET_BUTYPE_INFO], ['DATA_GET_STATE', M.NDMP4_DATA_GET_STATE], ['unknown 0x1234', 0x1234]] as const) {
    await rejectsNdmp(t, c.call(code, null, undefined, v4.ndmp4_config_get_host_info_reply), 'NDMP_HEADER_ERROR', E.NDMP4_NOT_AUTHORIZED_ERR, name)
  }
  await c.auth({ type: 'text', user: USER, password: PASSWORD })
  const host = await c.call(M.NDMP4_CONFIG_GET_HOST_INFO, null, undefined, v4.ndmp4_config_get_host_info_reply)
  t.equal(host.error, 0, 'HOST_INFO once authorized')
  await rejectsNdmp(t, c.call(0x1234, null, undefined, v4.ndmp4_config_get_host_info_reply), 'NDMP_HEADER_ERROR', E.NDMP4_NOT_SUPPORTED_ERR, 'unknown code once authorized')
})

t.test('CONNECT_OPEN: 3 and 4 only; the version is settled by the first other message', async (t) => {
  const srv = await startTestNdmp(t)
  const open = (c: NdmpConnection, v: number): Promise<unknown> => c.call(M.NDMP4_CONNECT_OPEN, v4.ndmp4_connect_open_request, { protocol_version: v }, v4.ndmp4_connect_open_reply)
  for (const bad of [2, 5, 0]) {
    await rejectsNdmp(t, NdmpConnection.connect({ host: '127.0.0.1', port: srv.port, version: bad as 3 }), 'NDMP_REPLY_ERROR', E.NDMP4_ILLEGAL_ARGS_ERR, `version ${bad}`)
  }
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port, version: 4 })
  t.teardown(() => { c.destroy() })
  t.same(await open(c, 4), { error: 0 }, 'the same version again is fine')
  await rejectsNdmp(t, open(c, 3), 'NDMP_REPLY_ERROR', E.NDMP4_ILLEGAL_ARGS_ERR, 'changing the version after CONNECT_OPEN')

  // A message before CONNECT_OPEN accepts the offered version 4.
  const raw = await RawPeer.open(srv.port)
  t.teardown(() => { raw.destroy() })
  await raw.next()
  raw.send(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined)
  const r1 = await raw.next()
  t.equal(r1?.header.error_code, 0)
  const s2 = raw.send(M.NDMP4_CONNECT_OPEN, v4.ndmp4_connect_open_request, { protocol_version: 3 })
  const r2 = await raw.next()
  t.equal(r2?.header.reply_sequence, s2, 'reply_sequence names the request')
  t.equal(r2?.header.message_type, 1)
  t.same(r2 === null ? null : decodeBody(v4.ndmp4_connect_open_reply, r2.body), { error: E.NDMP4_ILLEGAL_ARGS_ERR }, 'too late for v3')
  t.ok((r2?.header.sequence ?? 0) > (r1?.header.sequence ?? 0), 'our sequence numbers rise')
})

t.test('malformed requests get the exact header error, and the connection goes on', async (t) => {
  const srv = await startTestNdmp(t)
  const raw = await RawPeer.open(srv.port)
  t.teardown(() => { raw.destroy() })
  await raw.next()
  const expect = async (what: string, error: number): Promise<void> => {
    const m = await raw.next()
    t.equal(m?.header.message_type, 1, `${what}: a reply`)
    t.equal(m?.header.error_code, error, `${what}: error ${error}`)
    t.equal(m?.body.length, 0, `${what}: no body`)
  }
  raw.send(M.NDMP4_CONNECT_OPEN, null, undefined)
  await expect('CONNECT_OPEN without its body', E.NDMP4_XDR_DECODE_ERR)
  raw.sendRecord(Buffer.concat([header(M.NDMP4_CONNECT_OPEN, 20), u32(4), u32(0)]))
  await expect('CONNECT_OPEN with 4 bytes over', E.NDMP4_XDR_DECODE_ERR)
  raw.sendRecord(Buffer.concat([header(M.NDMP4_CONNECT_CLIENT_AUTH, 21), u32(7)]))
  await expect('CLIENT_AUTH with an undeclared auth type', E.NDMP4_XDR_DECODE_ERR)
  raw.sendRecord(Buffer.concat([header(M.NDMP4_CONNECT_CLIENT_AUTH, 22), u32(1), u32(0xffff_fff0)]))
  await expect('CLIENT_AUTH whose string claims 4 GiB', E.NDMP4_XDR_DECODE_ERR)
  raw.sendRecord(Buffer.concat([header(M.NDMP4_CONFIG_GET_SERVER_INFO, 23), u32(1)]))
  await expect('SERVER_INFO with a body where none is due', E.NDMP4_XDR_DECODE_ERR)
  raw.sendRecord(header(M.NDMP4_CONFIG_GET_SERVER_INFO, 24, 9))
  await expect('message_type 9', E.NDMP4_XDR_DECODE_ERR)
  // A reply where a request is due, and a post: neither is answered (nothing waits for them).
  raw.sendRecord(header(M.NDMP4_CONFIG_GET_SERVER_INFO, 25, 1))
  raw.sendRecord(Buffer.concat([header(M.NDMP4_LOG_MESSAGE, 26), u32(0), u32(0), u32(0), u32(0), u32(0)]))
  const s = raw.send(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined)
  const m = await raw.next()
  t.equal(m?.header.reply_sequence, s, 'the next answer is to the next request: the reply and the post got none')
  t.equal(m?.header.error_code, 0)
})

t.test('what cannot be answered closes that connection only: oversize, short, garbage', async (t) => {
  const srv = await startTestNdmp(t)
  const good = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  t.teardown(() => { good.destroy() })
  await good.auth({ type: 'text', user: USER, password: PASSWORD })

  const big = await RawPeer.open(srv.port)
  await big.next()
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE(0xffff_ffff)
  big.socket.write(mark) // a last fragment of 2 GiB - 1: refused before anything is allocated
  t.ok(await big.closedWithin(3000), 'an oversize fragment header closes the connection')

  const short = await RawPeer.open(srv.port)
  await short.next()
  short.sendRecord(Buffer.alloc(10))
  t.ok(await short.closedWithin(3000), 'a record shorter than a header closes the connection')

  const junk = await RawPeer.open(srv.port)
  await junk.next()
  const seed = Number(process.env.NDMP_FUZZ_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed}`)
  let x = seed
  const bytes = Buffer.alloc(4096)
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    bytes[i] = x >>> 24
  }
  junk.socket.write(bytes)
  junk.socket.end()
  await junk.closedWithin(3000)
  t.ok(true, 'garbage did not hang the test')

  const host = await good.call(M.NDMP4_CONFIG_GET_HOST_INFO, null, undefined, v4.ndmp4_config_get_host_info_reply)
  t.equal(host.error, 0, 'the other connection is served throughout')
  const fresh = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  await fresh.auth({ type: 'md5', user: USER, password: PASSWORD })
  await fresh.close()
  t.pass('and new connections too')
})

t.test('services: a handler\'s NdmpError goes in the reply body, a crash is UNDEFINED_ERR, posts reach the DMA', async (t) => {
  const TEST_CODE = 0x20000001 // a proprietary extension code
  const FAIL_CODE = 0x20000002
  const CRASH_CODE = 0x20000003
  const service: NdmpService = {
    name: 'test',
    register(reg) {
      reg.register(4, TEST_CODE, {
        request: v4.ndmp4_log_message_post,
        reply: v4.ndmp4_data_get_env_reply,
        handle: async (s, req) => {
          await s.post(M.NDMP4_LOG_MESSAGE, v4.ndmp4_log_message_post, { ...req, entry: `echo ${req.entry}` })
          const n = s.state('count', () => ({ n: 0 }))
          n.n++
          return { error: 0, env: [{ name: 'calls', value: String(n.n) }, { name: 'user', value: s.user ?? '' }] }
        },
      })
      reg.register(4, FAIL_CODE, {
        request: null,
        reply: v4.ndmp4_data_get_state_reply,
        handle: () => {
          throw new NdmpError(E.NDMP4_ILLEGAL_STATE_ERR, 'not now')
        },
      })
      reg.register(4, CRASH_CODE, {
        request: null,
        reply: v4.ndmp4_data_get_env_reply,
        handle: () => {
          throw new Error('boom')
        },
      })
    },
  }
  const srv = await startTestNdmp(t, { services: [service] })
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  t.teardown(() => { c.destroy() })
  await c.auth({ type: 'text', user: USER, password: PASSWORD })
  const posts: string[] = []
  c.onPost((p) => {
    if (p.code === M.NDMP4_LOG_MESSAGE) posts.push(decodeBody(v4.ndmp4_log_message_post, p.body).entry)
  })
  const log = { log_type: 0 as const, message_id: 7, entry: 'hi', associated_message_valid: 0 as const, associated_message_sequence: 0 }
  const r1 = await c.call(TEST_CODE, v4.ndmp4_log_message_post, log, v4.ndmp4_data_get_env_reply)
  const r2 = await c.call(TEST_CODE, v4.ndmp4_log_message_post, log, v4.ndmp4_data_get_env_reply)
  t.same(r1.env, [{ name: 'calls', value: '1' }, { name: 'user', value: USER }])
  t.same(r2.env[0], { name: 'calls', value: '2' }, 'per-session state persists')
  t.same(posts, ['echo hi', 'echo hi'], 'the posts came before their replies')
  const err = await c.call(FAIL_CODE, null, undefined, v4.ndmp4_data_get_state_reply).catch((e: unknown) => e)
  t.ok(err instanceof NdmpClientError && err.code === 'NDMP_REPLY_ERROR' && err.ndmpError === E.NDMP4_ILLEGAL_STATE_ERR, 'NdmpError: body error')
  if (err instanceof NdmpClientError) {
    const body = err.reply as v4.ndmp4_data_get_state_reply
    t.equal(body.state, 0, 'the rest of the body is zero')
  }
  await rejectsNdmp(t, c.call(CRASH_CODE, null, undefined, v4.ndmp4_data_get_env_reply), 'NDMP_HEADER_ERROR', E.NDMP4_UNDEFINED_ERR, 'a handler crash')
  const again = await c.call(TEST_CODE, v4.ndmp4_log_message_post, log, v4.ndmp4_data_get_env_reply)
  t.same(again.env[0], { name: 'calls', value: '3' }, 'the session goes on after a crash')
})

t.test('CONNECT_CLOSE: no reply, the connection ends and close hooks run', async (t) => {
  let hooks = 0
  const srv = await startTestNdmp(t, {
    services: [{ name: 'hook', register(reg) {
      reg.register(4, 0x20000010, { request: null, reply: v4.ndmp4_data_stop_reply, handle: (s) => { s.onClose(() => { hooks++ }); return { error: 0 } } })
    } }],
  })
  const raw = await RawPeer.open(srv.port)
  await raw.next()
  raw.send(M.NDMP4_CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, { auth_data: { auth_type: 1, auth_text: { auth_id: USER, auth_password: PASSWORD } } })
  t.equal((await raw.next())?.header.error_code, 0)
  raw.send(0x20000010, null, undefined)
  t.equal((await raw.next())?.header.error_code, 0)
  raw.send(M.NDMP4_CONNECT_CLOSE, null, undefined)
  t.equal(await raw.next(), null, 'no reply: the connection just ends')
  for (let i = 0; i < 50 && hooks === 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(hooks, 1, 'the close hook ran')
  t.equal(srv.sessions, 0)
})

t.test('limits: connections past maxSessions are REFUSED; a connection that does not authorize in time is closed', async (t) => {
  const srv = await startTestNdmp(t, { maxSessions: 1, authTimeoutMs: 300 })
  const a = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  await rejectsNdmp(t, NdmpConnection.connect({ host: '127.0.0.1', port: srv.port }), 'NDMP_REFUSED', null, 'the second connection')
  await new Promise((r) => setTimeout(r, 600))
  await rejectsNdmp(t, a.call(M.NDMP4_CONFIG_GET_SERVER_INFO, null, undefined, v4.ndmp4_config_get_server_info_reply), 'NDMP_CLOSED', null, 'unauthorized past the timeout')
  const b = await NdmpConnection.connect({ host: '127.0.0.1', port: srv.port })
  await b.auth({ type: 'text', user: USER, password: PASSWORD })
  await new Promise((r) => setTimeout(r, 500))
  const info = await b.call(M.NDMP4_CONFIG_GET_HOST_INFO, null, undefined, v4.ndmp4_config_get_host_info_reply)
  t.equal(info.error, 0, 'an authorized connection has no such timeout')
  await b.close()
})

function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}

function header(code: number, seq: number, type = 0): Buffer {
  return Buffer.concat([u32(seq), u32(0), u32(type), u32(code), u32(0), u32(0)])
}
