/*
 * One NDMP agent as the job driver uses it (v4 messages, draft-skardal-ndmpv4-04): connected and
 * authorized, its posts (NOTIFY, LOG, FH) decoded and handed on, and the TAPE and MOVER calls of
 * a backup. Calls fail with the client's NdmpClientError (the exact NDMP error).
 */
import type { NdmpAuth, NdmpPost } from '../../client/ndmp/connection.ts'
import { NdmpConnection } from '../../client/ndmp/connection.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'

export const M = v4.ndmp4_message

/** Whole records of this size go to tape (the SDK's default: 20 blocks of 512). */
export const RECORD_SIZE = 10240
const WHOLE_TAPE = 0xffffffffffffffffn

export class NdmpAgent {
  readonly conn: NdmpConnection
  readonly name: string
  private constructor(conn: NdmpConnection, name: string) {
    this.conn = conn
    this.name = name
  }

  static async open(host: string, port: number, auth: NdmpAuth | null): Promise<NdmpAgent> {
    const conn = await NdmpConnection.connect({ host, port, version: 4 })
    try {
      if (auth !== null) await conn.auth(auth)
    } catch (err) {
      conn.destroy()
      throw err
    }
    return new NdmpAgent(conn, `${host}:${port}`)
  }

  onPost(fn: (post: NdmpPost) => void): () => void {
    return this.conn.onPost(fn)
  }

  async tapeOpen(device: string): Promise<void> {
    await this.conn.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device, mode: v4.ndmp4_tape_open_mode.NDMP4_TAPE_RDWR_MODE }, v4.ndmp4_tape_open_reply)
  }

  async tapeClose(): Promise<void> {
    await this.conn.call(M.NDMP4_TAPE_CLOSE, null, undefined, v4.ndmp4_tape_close_reply)
  }

  /** MOVER_SET_RECORD_SIZE, MOVER_SET_WINDOW (all of the tape), MOVER_LISTEN in READ mode (it reads the data connection). */
  async moverListen(addrType: 'tcp' | 'local'): Promise<v4.ndmp4_addr> {
    await this.conn.call(M.NDMP4_MOVER_SET_RECORD_SIZE, v4.ndmp4_mover_set_record_size_request, { len: RECORD_SIZE }, v4.ndmp4_mover_set_record_size_reply)
    await this.conn.call(M.NDMP4_MOVER_SET_WINDOW, v4.ndmp4_mover_set_window_request, { offset: 0n, length: WHOLE_TAPE }, v4.ndmp4_mover_set_window_reply)
    const type = addrType === 'tcp' ? v4.ndmp4_addr_type.NDMP4_ADDR_TCP : v4.ndmp4_addr_type.NDMP4_ADDR_LOCAL
    const r = await this.conn.call(M.NDMP4_MOVER_LISTEN, v4.ndmp4_mover_listen_request, { mode: v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_READ, addr_type: type }, v4.ndmp4_mover_listen_reply)
    return r.connect_addr
  }

  moverState(): Promise<v4.ndmp4_mover_get_state_reply> {
    return this.conn.call(M.NDMP4_MOVER_GET_STATE, null, undefined, v4.ndmp4_mover_get_state_reply)
  }

  async moverContinue(): Promise<void> {
    await this.conn.call(M.NDMP4_MOVER_CONTINUE, null, undefined, v4.ndmp4_mover_continue_reply)
  }

  async moverStop(): Promise<void> {
    await this.conn.call(M.NDMP4_MOVER_STOP, null, undefined, v4.ndmp4_mover_stop_reply)
  }

  async moverAbort(): Promise<void> {
    await this.conn.call(M.NDMP4_MOVER_ABORT, null, undefined, v4.ndmp4_mover_abort_reply)
  }

  async dataConnect(addr: v4.ndmp4_addr): Promise<void> {
    await this.conn.call(M.NDMP4_DATA_CONNECT, v4.ndmp4_data_connect_request, { addr }, v4.ndmp4_data_connect_reply)
  }

  async dataStartBackup(env: Record<string, string>): Promise<void> {
    const pairs = Object.entries(env).map(([name, value]) => ({ name, value }))
    await this.conn.call(M.NDMP4_DATA_START_BACKUP, v4.ndmp4_data_start_backup_request, { butype_name: 'tar', env: pairs }, v4.ndmp4_data_start_backup_reply)
  }

  dataState(): Promise<v4.ndmp4_data_get_state_reply> {
    return this.conn.call(M.NDMP4_DATA_GET_STATE, null, undefined, v4.ndmp4_data_get_state_reply)
  }

  async dataStop(): Promise<void> {
    await this.conn.call(M.NDMP4_DATA_STOP, null, undefined, v4.ndmp4_data_stop_reply)
  }

  async dataAbort(): Promise<void> {
    await this.conn.call(M.NDMP4_DATA_ABORT, null, undefined, v4.ndmp4_data_abort_reply)
  }

  close(): Promise<void> {
    return this.conn.close()
  }
}
