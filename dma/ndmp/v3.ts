/*
 * Where NDMP v3 differs, on the wire, from the v4 the job driver speaks (the SDK's ndmp3.x and
 * ndmp4.x; draft-skardal-ndmpv4-04 §2 lists the changes). The message codes are the same, and
 * most bodies the DMA sends or reads have the same bytes in both (TAPE_OPEN/MTIO/CLOSE, the
 * MOVER requests, DATA_START_BACKUP/RECOVER — ndmp3_name's destination_dir and new_name sit where
 * v4's destination_path and name do —, NOTIFY_DATA_READ and _MOVER_PAUSED, LOG_FILE, the FH
 * posts). These differ, and are translated here into the v4 shapes the callers use:
 *  - an address (MOVER_LISTEN's reply, DATA_CONNECT): v3 has one TCP address, v4 a list of
 *    addresses, each with an env;
 *  - MOVER_GET_STATE's reply: v3 has no mode and says data_written for bytes_moved;
 *  - NOTIFY_DATA_HALTED, NOTIFY_MOVER_HALTED: v3 adds a text_reason;
 *  - LOG_MESSAGE: v3 has no associated message fields.
 * Also the order of MOVER_SET_WINDOW: v4 sets it in IDLE, before MOVER_LISTEN; v3 after, in
 * LISTEN (the SDK's v3 mover refuses it in IDLE) — see agent.ts.
 */
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../xdr/ndmp/message.ts'

export type NdmpVersion = 3 | 4

export function addrFrom3(a: v3.ndmp3_addr): v4.ndmp4_addr {
  if (a.addr_type === 0) return { addr_type: 0 }
  if (a.addr_type === 1) return { addr_type: 1, tcp_addr: [{ ip_addr: a.tcp_addr.ip_addr, port: a.tcp_addr.port, addr_env: [] }] }
  throw new Error(`an NDMP v3 address of type ${a.addr_type} (neither LOCAL nor TCP)`)
}

export function addrTo3(a: v4.ndmp4_addr): v3.ndmp3_addr {
  if (a.addr_type === 0) return { addr_type: 0 }
  const first = a.addr_type === 1 ? a.tcp_addr[0] : undefined
  if (first === undefined) throw new Error('no TCP address to give an NDMP v3 agent')
  return { addr_type: 1, tcp_addr: { ip_addr: first.ip_addr, port: first.port } }
}

/** v3's MOVER_GET_STATE reply in v4's shape; `mode` is what the DMA last listened with. */
export function moverStateFrom3(s: v3.ndmp3_mover_get_state_reply, mode: v4.ndmp4_mover_mode): v4.ndmp4_mover_get_state_reply {
  return {
    error: s.error,
    mode,
    state: s.state,
    pause_reason: s.pause_reason,
    halt_reason: s.halt_reason,
    record_size: s.record_size,
    record_num: s.record_num,
    bytes_moved: s.data_written,
    seek_position: s.seek_position,
    bytes_left_to_read: s.bytes_left_to_read,
    window_offset: s.window_offset,
    window_length: s.window_length,
    data_connection_addr: s.data_connection_addr.addr_type <= 1 ? addrFrom3(s.data_connection_addr) : { addr_type: 0 },
  }
}

/** LOG_MESSAGE's type and text, either version. */
export function logMessageOf(version: NdmpVersion, body: Buffer): { log_type: number; entry: string } {
  return version === 4 ? decodeBody(v4.ndmp4_log_message_post, body) : decodeBody(v3.ndmp3_log_message_request, body)
}

/** NOTIFY_DATA_HALTED's reason, either version. */
export function dataHaltOf(version: NdmpVersion, body: Buffer): number {
  return version === 4 ? decodeBody(v4.ndmp4_notify_data_halted_post, body).reason : decodeBody(v3.ndmp3_notify_data_halted_request, body).reason
}

/** NOTIFY_MOVER_HALTED's reason, either version. */
export function moverHaltOf(version: NdmpVersion, body: Buffer): number {
  return version === 4 ? decodeBody(v4.ndmp4_notify_mover_halted_post, body).reason : decodeBody(v3.ndmp3_notify_mover_halted_request, body).reason
}
