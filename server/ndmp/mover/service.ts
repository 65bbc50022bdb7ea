/*
 * The NDMP MOVER service (draft-skardal-ndmpv4 §3.9; v3 alike): GET_STATE, LISTEN, CONNECT,
 * CONTINUE, ABORT, STOP, CLOSE, SET_WINDOW, READ, SET_RECORD_SIZE. The state machine is
 * mover.ts; here are the wire shapes of both versions (v4 lists TCP addresses, v3 carries one;
 * v3 allows SET_WINDOW in LISTEN, v4 does not).
 */
import { isIPv4 } from 'node:net'
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import type { NdmpRegistry, NdmpService, NdmpSession } from '../service-types.ts'
import { asNdmpError } from '../tape/ndmp-error.ts'
import { connectTcp, ipv4ToU32, listenTcp, localDataPort, u32ToIpv4 } from './connection.ts'
import type { DataListener, TcpAddr } from './connection.ts'
import { MoverError } from './mover-types.ts'
import type { MoverStatus } from './mover.ts'
import { moverOf } from './session-mover.ts'
import { moverListenRequest } from '../tape/lenient-requests.ts'

const ADDR_LOCAL = 0
const ADDR_TCP = 1

async function guard<T>(session: NdmpSession, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    return asNdmpError(session.version, err)
  }
}

/** The address a TCP listen offers: this session's end of its control connection. */
function listenHost(session: NdmpSession): string {
  const a = session.local.address.replace(/^::ffff:/, '')
  return isIPv4(a) ? a : '0.0.0.0'
}

function listen(session: NdmpSession, mode: number, addrType: number): Promise<DataListener> {
  const mover = moverOf(session)
  if (addrType === ADDR_LOCAL) return mover.listen(mode, () => localDataPort(session).listen(), 'local')
  if (addrType === ADDR_TCP) return mover.listen(mode, () => listenTcp({ host: listenHost(session) }), 'tcp')
  throw new MoverError('ILLEGAL_ARGS_ERR', `address type ${String(addrType)}`)
}

function connect(session: NdmpSession, mode: number, addrType: number, tcp: TcpAddr[]): Promise<void> {
  const mover = moverOf(session)
  if (addrType === ADDR_LOCAL) return mover.connect(mode, () => localDataPort(session).connect())
  if (addrType === ADDR_TCP) return mover.connect(mode, () => connectTcp(tcp))
  throw new MoverError('ILLEGAL_ARGS_ERR', `address type ${String(addrType)}`)
}

function addr4(s: MoverStatus): v4.ndmp4_addr {
  if (s.address?.kind === 'tcp') return { addr_type: 1, tcp_addr: s.address.addrs.map((a) => ({ ip_addr: ipv4ToU32(a.host), port: a.port, addr_env: [] })) }
  return { addr_type: 0 }
}

function addr3(s: MoverStatus): v3.ndmp3_addr {
  const a = s.address?.kind === 'tcp' ? s.address.addrs[0] : undefined
  if (a !== undefined) return { addr_type: 1, tcp_addr: { ip_addr: ipv4ToU32(a.host), port: a.port } }
  return { addr_type: 0 }
}

function register4(r: NdmpRegistry): void {
  const M = v4.ndmp4_message
  const OK = v4.ndmp4_error.NDMP4_NO_ERR
  const ok = { error: OK }
  r.register(4, M.NDMP4_MOVER_GET_STATE, {
    request: null,
    reply: v4.ndmp4_mover_get_state_reply,
    handle: (s) => {
      const st = moverOf(s).status()
      return {
        error: OK,
        mode: st.mode,
        state: st.state,
        pause_reason: st.pauseReason,
        halt_reason: st.haltReason,
        record_size: st.recordSize,
        record_num: st.recordNum,
        bytes_moved: st.bytesMoved,
        seek_position: st.seekPosition,
        bytes_left_to_read: st.bytesLeftToRead,
        window_offset: st.windowOffset,
        window_length: st.windowLength,
        data_connection_addr: addr4(st),
      }
    },
  })
  r.register(4, M.NDMP4_MOVER_LISTEN, {
    request: moverListenRequest,
    reply: v4.ndmp4_mover_listen_reply,
    handle: (s, q) =>
      guard(s, async () => {
        await listen(s, q.mode, q.addr_type)
        return { error: OK, connect_addr: addr4(moverOf(s).status()) }
      }),
  })
  r.register(4, M.NDMP4_MOVER_CONNECT, {
    request: v4.ndmp4_mover_connect_request,
    reply: v4.ndmp4_mover_connect_reply,
    handle: (s, q) =>
      guard(s, async () => {
        const tcp = q.addr.addr_type === 1 ? q.addr.tcp_addr.map((a) => ({ host: u32ToIpv4(a.ip_addr), port: a.port })) : []
        await connect(s, q.mode, q.addr.addr_type, tcp)
        return ok
      }),
  })
  const simple = (code: number, reply: typeof v4.ndmp4_mover_continue_reply, op: (s: NdmpSession) => void): void => {
    r.register(4, code, { request: null, reply, handle: (s) => guard(s, () => (op(s), ok)) })
  }
  simple(M.NDMP4_MOVER_CONTINUE, v4.ndmp4_mover_continue_reply, (s) => {
    moverOf(s).continue()
  })
  simple(M.NDMP4_MOVER_ABORT, v4.ndmp4_mover_abort_reply, (s) => {
    moverOf(s).abort()
  })
  simple(M.NDMP4_MOVER_STOP, v4.ndmp4_mover_stop_reply, (s) => {
    moverOf(s).stop()
  })
  simple(M.NDMP4_MOVER_CLOSE, v4.ndmp4_mover_close_reply, (s) => {
    moverOf(s).close()
  })
  r.register(4, M.NDMP4_MOVER_SET_WINDOW, {
    request: v4.ndmp4_mover_set_window_request,
    reply: v4.ndmp4_mover_set_window_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).setWindow(q.offset, q.length), ok)),
  })
  r.register(4, M.NDMP4_MOVER_READ, {
    request: v4.ndmp4_mover_read_request,
    reply: v4.ndmp4_mover_read_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).read(q.offset, q.length), ok)),
  })
  r.register(4, M.NDMP4_MOVER_SET_RECORD_SIZE, {
    request: v4.ndmp4_mover_set_record_size_request,
    reply: v4.ndmp4_mover_set_record_size_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).setRecordSize(q.len), ok)),
  })
}

function register3(r: NdmpRegistry): void {
  const M = v3.ndmp3_message
  const OK = v3.ndmp3_error.NDMP3_NO_ERR
  const ok = { error: OK }
  r.register(3, M.NDMP3_MOVER_GET_STATE, {
    request: null,
    reply: v3.ndmp3_mover_get_state_reply,
    handle: (s) => {
      const st = moverOf(s).status()
      return {
        error: OK,
        state: st.state,
        pause_reason: st.pauseReason,
        halt_reason: st.haltReason,
        record_size: st.recordSize,
        record_num: st.recordNum,
        data_written: st.bytesMoved,
        seek_position: st.seekPosition,
        bytes_left_to_read: st.bytesLeftToRead,
        window_offset: st.windowOffset,
        window_length: st.windowLength,
        data_connection_addr: addr3(st),
      }
    },
  })
  r.register(3, M.NDMP3_MOVER_LISTEN, {
    request: moverListenRequest,
    reply: v3.ndmp3_mover_listen_reply,
    handle: (s, q) =>
      guard(s, async () => {
        await listen(s, q.mode, q.addr_type)
        return { error: OK, data_connection_addr: addr3(moverOf(s).status()) }
      }),
  })
  r.register(3, M.NDMP3_MOVER_CONNECT, {
    request: v3.ndmp3_mover_connect_request,
    reply: v3.ndmp3_mover_connect_reply,
    handle: (s, q) =>
      guard(s, async () => {
        const tcp = q.addr.addr_type === 1 ? [{ host: u32ToIpv4(q.addr.tcp_addr.ip_addr), port: q.addr.tcp_addr.port }] : []
        await connect(s, q.mode, q.addr.addr_type, tcp)
        return ok
      }),
  })
  const simple = (code: number, reply: typeof v3.ndmp3_mover_continue_reply, op: (s: NdmpSession) => void): void => {
    r.register(3, code, { request: null, reply, handle: (s) => guard(s, () => (op(s), ok)) })
  }
  simple(M.NDMP3_MOVER_CONTINUE, v3.ndmp3_mover_continue_reply, (s) => {
    moverOf(s).continue()
  })
  simple(M.NDMP3_MOVER_ABORT, v3.ndmp3_mover_abort_reply, (s) => {
    moverOf(s).abort()
  })
  simple(M.NDMP3_MOVER_STOP, v3.ndmp3_mover_stop_reply, (s) => {
    moverOf(s).stop()
  })
  simple(M.NDMP3_MOVER_CLOSE, v3.ndmp3_mover_close_reply, (s) => {
    moverOf(s).close()
  })
  r.register(3, M.NDMP3_MOVER_SET_WINDOW, {
    request: v3.ndmp3_mover_set_window_request,
    reply: v3.ndmp3_mover_set_window_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).setWindow(q.offset, q.length, true), ok)),
  })
  r.register(3, M.NDMP3_MOVER_READ, {
    request: v3.ndmp3_mover_read_request,
    reply: v3.ndmp3_mover_read_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).read(q.offset, q.length), ok)),
  })
  r.register(3, M.NDMP3_MOVER_SET_RECORD_SIZE, {
    request: v3.ndmp3_mover_set_record_size_request,
    reply: v3.ndmp3_mover_set_record_size_reply,
    handle: (s, q) => guard(s, () => (moverOf(s).setRecordSize(q.len), ok)),
  })
}

export const moverService: NdmpService = {
  name: 'mover',
  register(r: NdmpRegistry): void {
    register4(r)
    register3(r)
  },
}
