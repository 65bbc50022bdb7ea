/*
 * One NDMP agent as the job driver uses it (v4 messages, draft-skardal-ndmpv4-04): connected and
 * authorized, its posts (NOTIFY, LOG, FH) decoded and handed on, and the TAPE and MOVER calls of
 * a backup. Calls fail with the client's NdmpClientError (the exact NDMP error).
 * The version is the one the agent offers (4, or 3 from an agent that speaks no more), or the
 * one its ndmp-auth line names; with v3 the calls whose bodies differ go through v3.ts, and the
 * callers see v4's shapes either way.
 */
import type { NdmpAuth, NdmpPost } from '../../client/ndmp/connection.ts'
import { NdmpConnection } from '../../client/ndmp/connection.ts'
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { addrFrom3, addrTo3, dataHaltOf, logMessageOf, moverHaltOf, moverStateFrom3 } from './v3.ts'
import type { NdmpVersion } from './v3.ts'
import { ndmpLoginFor } from './auth.ts'

export const M = v4.ndmp4_message

/** Whole records of this size go to tape (the SDK's default: 20 blocks of 512). */
export const RECORD_SIZE = 10240
const WHOLE_TAPE = 0xffffffffffffffffn

export class NdmpAgent {
  readonly conn: NdmpConnection
  readonly name: string
  /** The mode of the last MOVER_LISTEN (v3's MOVER_GET_STATE does not say it). */
  #moverMode: v4.ndmp4_mover_mode = v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_READ
  private constructor(conn: NdmpConnection, name: string) {
    this.conn = conn
    this.name = name
  }

  /** `version`: the one to open; absent, the agent's offer (4 at most). `timeoutMs`: per call (the connection's default when absent). */
  static async open(host: string, port: number, auth: NdmpAuth | null, version?: NdmpVersion, timeoutMs?: number): Promise<NdmpAgent> {
    const conn = await NdmpConnection.connect({ host, port, ...(version === undefined ? {} : { version }), ...(timeoutMs === undefined ? {} : { timeoutMs }) })
    try {
      if (auth !== null) await conn.auth(auth)
    } catch (err) {
      conn.destroy()
      throw err
    }
    return new NdmpAgent(conn, `${host}:${port}`)
  }

  get version(): NdmpVersion {
    return this.conn.version
  }

  /** Opens the agent at host:port as STATE/ndmp-auth says (credentials, and a version if named). */
  static async forDma(stateDir: string, host: string, port: number, timeoutMs?: number): Promise<NdmpAgent> {
    const login = await ndmpLoginFor(stateDir, host, port)
    return NdmpAgent.open(host, port, login.auth, login.version, timeoutMs)
  }

  onPost(fn: (post: NdmpPost) => void): () => void {
    return this.conn.onPost(fn)
  }

  /** LOG_MESSAGE's type and text. */
  logMessage(post: NdmpPost): { log_type: number; entry: string } {
    return logMessageOf(this.version, post.body)
  }

  /** NOTIFY_DATA_HALTED's or NOTIFY_MOVER_HALTED's reason. */
  haltReason(post: NdmpPost): number {
    return post.code === M.NDMP4_NOTIFY_DATA_HALTED ? dataHaltOf(this.version, post.body) : moverHaltOf(this.version, post.body)
  }

  async tapeOpen(device: string): Promise<void> {
    await this.conn.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device, mode: v4.ndmp4_tape_open_mode.NDMP4_TAPE_RDWR_MODE }, v4.ndmp4_tape_open_reply)
  }

  async tapeClose(): Promise<void> {
    await this.conn.call(M.NDMP4_TAPE_CLOSE, null, undefined, v4.ndmp4_tape_close_reply)
  }

  /** MOVER_SET_RECORD_SIZE, MOVER_SET_WINDOW (all of the tape), MOVER_LISTEN in READ mode (it reads the data connection). */
  moverListen(addrType: 'tcp' | 'local'): Promise<v4.ndmp4_addr> {
    return this.listen(v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_READ, addrType, { offset: 0n, length: WHOLE_TAPE })
  }

  /**
   * MOVER_SET_RECORD_SIZE, then MOVER_LISTEN in `mode` with the window set: before the listen in
   * v4 (IDLE), after it in v3 (LISTEN: the SDK's v3 mover refuses the window in IDLE).
   */
  async listen(mode: v4.ndmp4_mover_mode, addrType: 'tcp' | 'local', window: { offset: bigint; length: bigint }): Promise<v4.ndmp4_addr> {
    await this.conn.call(M.NDMP4_MOVER_SET_RECORD_SIZE, v4.ndmp4_mover_set_record_size_request, { len: RECORD_SIZE }, v4.ndmp4_mover_set_record_size_reply)
    const type = addrType === 'tcp' ? v4.ndmp4_addr_type.NDMP4_ADDR_TCP : v4.ndmp4_addr_type.NDMP4_ADDR_LOCAL
    const setWindow = (): Promise<unknown> => this.conn.call(M.NDMP4_MOVER_SET_WINDOW, v4.ndmp4_mover_set_window_request, window, v4.ndmp4_mover_set_window_reply)
    this.#moverMode = mode
    if (this.version === 3) {
      const r = await this.conn.call(M.NDMP4_MOVER_LISTEN, v4.ndmp4_mover_listen_request, { mode, addr_type: type }, v3.ndmp3_mover_listen_reply)
      await setWindow()
      return addrFrom3(r.data_connection_addr)
    }
    await setWindow()
    return (await this.conn.call(M.NDMP4_MOVER_LISTEN, v4.ndmp4_mover_listen_request, { mode, addr_type: type }, v4.ndmp4_mover_listen_reply)).connect_addr
  }

  async moverState(): Promise<v4.ndmp4_mover_get_state_reply> {
    if (this.version === 3) return moverStateFrom3(await this.conn.call(M.NDMP4_MOVER_GET_STATE, null, undefined, v3.ndmp3_mover_get_state_reply), this.#moverMode)
    return this.conn.call(M.NDMP4_MOVER_GET_STATE, null, undefined, v4.ndmp4_mover_get_state_reply)
  }

  /** DATA_GET_STATE: the state, the halt reason and the bytes processed (in v3's reply too, at other places). */
  async dataState(): Promise<{ state: number; halt_reason: number; bytes_processed: bigint }> {
    if (this.version === 3) return this.conn.call(M.NDMP4_DATA_GET_STATE, null, undefined, v3.ndmp3_data_get_state_reply)
    return this.conn.call(M.NDMP4_DATA_GET_STATE, null, undefined, v4.ndmp4_data_get_state_reply)
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
    if (this.version === 3) await this.conn.call(M.NDMP4_DATA_CONNECT, v3.ndmp3_data_connect_request, { addr: addrTo3(addr) }, v4.ndmp4_data_connect_reply)
    else await this.conn.call(M.NDMP4_DATA_CONNECT, v4.ndmp4_data_connect_request, { addr }, v4.ndmp4_data_connect_reply)
  }

  async dataStartBackup(env: Record<string, string>): Promise<void> {
    const pairs = Object.entries(env).map(([name, value]) => ({ name, value }))
    await this.conn.call(M.NDMP4_DATA_START_BACKUP, v4.ndmp4_data_start_backup_request, { butype_name: 'tar', env: pairs }, v4.ndmp4_data_start_backup_reply)
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
