/*
 * The NDMP DATA service (draft-skardal-ndmpv4 §3.7; v3 the same messages): the handlers of
 * DATA_GET_STATE, _START_BACKUP, _START_RECOVER, _START_RECOVER_FILEHIST, _ABORT, _GET_ENV,
 * _STOP, _LISTEN, _CONNECT for both versions, over one DataSession per NDMP session.
 */
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import type { NdmpHandler, NdmpRegistry, NdmpService, NdmpSession } from '../service-types.ts'
import { addrToV3, addrToV4, connectTargetV3, connectTargetV4 } from './addr.ts'
import { DataSession, INVALID_U_QUAD } from './data-session.ts'
import type { DataDeps, WireName } from './data-session.ts'
import { sessionPeer } from './posts.ts'

const KEY = Symbol('ndmp.data')

/**
 * DATA_LISTEN's request read as a plain u_long: the generated enum codec would answer an unknown
 * address type XDR_DECODE_ERR, where the draft (and ndmjob's test-data, "D-LISTEN/bogus-args")
 * wants NDMP_ILLEGAL_ARGS_ERR.
 */
const listenRequest: Codec<{ addr_type: number }> = {
  encode(w, v) {
    w.u32(v.addr_type)
  },
  decode(r) {
    return { addr_type: r.u32() }
  },
}

/** At most this many nlist entries in one recover (each is a few hundred bytes at most). */
const MAX_NLIST = 100_000

function text(b: Buffer): string {
  return b.toString('utf8')
}

function join(dir: string, name: string): string {
  if (name === '') return dir
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`
}

function namesV4(list: readonly v4.ndmp4_name[]): WireName[] {
  return list.slice(0, MAX_NLIST).map((n) => ({
    original: text(n.original_path),
    destination: join(text(n.destination_path), text(n.name)),
    fhInfo: n.fh_info === INVALID_U_QUAD ? null : n.fh_info,
  }))
}

function namesV3(list: readonly v3.ndmp3_name[]): WireName[] {
  return list.slice(0, MAX_NLIST).map((n) => ({
    original: text(n.original_path),
    destination: join(text(n.destination_dir), text(n.new_name)),
    fhInfo: n.fh_info === INVALID_U_QUAD ? null : n.fh_info,
  }))
}

export class DataService implements NdmpService {
  readonly name = 'data'
  private readonly deps: DataDeps

  constructor(deps: DataDeps) {
    this.deps = deps
  }

  /** The session's DATA state (made on first use; closed with the session). */
  dataOf(session: NdmpSession): DataSession {
    return session.state(KEY, () => {
      const ds = new DataSession(session, this.deps, sessionPeer(session))
      session.onClose(() => ds.close())
      return ds
    })
  }

  register(registry: NdmpRegistry): void {
    const reg4 = <A, R>(code: number, h: NdmpHandler<A, R>): void => {
      registry.register(4, code, h)
    }
    const reg3 = <A, R>(code: number, h: NdmpHandler<A, R>): void => {
      registry.register(3, code, h)
    }
    const M4 = v4.ndmp4_message
    const M3 = v3.ndmp3_message

    reg4(M4.NDMP4_DATA_GET_STATE, {
      request: null,
      reply: v4.ndmp4_data_get_state_reply,
      handle: (s): v4.ndmp4_data_get_state_reply => {
        const d = this.dataOf(s)
        const st = d.machine.status
        return {
          unsupported: (st.estBytesRemain === null ? v4.NDMP4_DATA_STATE_EST_BYTES_REMAIN_UNS : 0) | (st.estTimeRemain === null ? v4.NDMP4_DATA_STATE_EST_TIME_REMAIN_UNS : 0),
          error: 0,
          operation: st.operation,
          state: st.state,
          halt_reason: st.haltReason,
          bytes_processed: st.bytesProcessed,
          est_bytes_remain: st.estBytesRemain ?? 0n,
          est_time_remain: st.estTimeRemain ?? 0,
          data_connection_addr: addrToV4(st.addr, d.addresses),
          read_offset: st.readOffset,
          read_length: st.readLength,
        }
      },
    })
    reg3(M3.NDMP3_DATA_GET_STATE, {
      request: null,
      reply: v3.ndmp3_data_get_state_reply,
      handle: (s): v3.ndmp3_data_get_state_reply => {
        const st = this.dataOf(s).machine.status
        return {
          invalid: (st.estBytesRemain === null ? v3.NDMP3_DATA_STATE_EST_BYTES_REMAIN_INVALID : 0) | (st.estTimeRemain === null ? v3.NDMP3_DATA_STATE_EST_TIME_REMAIN_INVALID : 0),
          error: 0,
          operation: st.operation,
          state: st.state,
          halt_reason: st.haltReason,
          bytes_processed: st.bytesProcessed,
          est_bytes_remain: st.estBytesRemain ?? 0n,
          est_time_remain: st.estTimeRemain ?? 0,
          data_connection_addr: addrToV3(st.addr),
          read_offset: st.readOffset,
          read_length: st.readLength,
        }
      },
    })

    reg4(M4.NDMP4_DATA_LISTEN, {
      request: listenRequest,
      reply: v4.ndmp4_data_listen_reply,
      handle: async (s, req): Promise<v4.ndmp4_data_listen_reply> => {
        const d = this.dataOf(s)
        await d.listen(req.addr_type)
        return { error: 0, connect_addr: addrToV4(d.machine.status.addr, d.addresses) }
      },
    })
    reg3(M3.NDMP3_DATA_LISTEN, {
      request: listenRequest,
      reply: v3.ndmp3_data_listen_reply,
      handle: async (s, req): Promise<v3.ndmp3_data_listen_reply> => {
        const d = this.dataOf(s)
        await d.listen(req.addr_type)
        return { error: 0, data_connection_addr: addrToV3(d.machine.status.addr) }
      },
    })

    reg4(M4.NDMP4_DATA_CONNECT, {
      request: v4.ndmp4_data_connect_request,
      reply: v4.ndmp4_data_connect_reply,
      handle: async (s, req): Promise<v4.ndmp4_data_connect_reply> => {
        await this.dataOf(s).connect(connectTargetV4(req.addr))
        return { error: 0 }
      },
    })
    reg3(M3.NDMP3_DATA_CONNECT, {
      request: v3.ndmp3_data_connect_request,
      reply: v3.ndmp3_data_connect_reply,
      handle: async (s, req): Promise<v3.ndmp3_data_connect_reply> => {
        await this.dataOf(s).connect(connectTargetV3(req.addr))
        return { error: 0 }
      },
    })

    reg4(M4.NDMP4_DATA_START_BACKUP, {
      request: v4.ndmp4_data_start_backup_request,
      reply: v4.ndmp4_data_start_backup_reply,
      handle: async (s, req): Promise<v4.ndmp4_data_start_backup_reply> => {
        await this.dataOf(s).startBackup(req.butype_name, req.env)
        return { error: 0 }
      },
    })
    reg3(M3.NDMP3_DATA_START_BACKUP, {
      request: v3.ndmp3_data_start_backup_request,
      reply: v3.ndmp3_data_start_backup_reply,
      handle: async (s, req): Promise<v3.ndmp3_data_start_backup_reply> => {
        await this.dataOf(s).startBackup(req.bu_type, req.env)
        return { error: 0 }
      },
    })

    for (const [code, mode] of [[M4.NDMP4_DATA_START_RECOVER, 'recover'], [M4.NDMP4_DATA_START_RECOVER_FILEHIST, 'filehist']] as const) {
      reg4(code, {
        request: v4.ndmp4_data_start_recover_request,
        reply: v4.ndmp4_data_start_recover_reply,
        handle: async (s, req): Promise<v4.ndmp4_data_start_recover_reply> => {
          await this.dataOf(s).startRecover(mode, req.butype_name, req.env, namesV4(req.nlist))
          return { error: 0 }
        },
      })
    }
    for (const [code, mode] of [[M3.NDMP3_DATA_START_RECOVER, 'recover'], [M3.NDMP3_DATA_START_RECOVER_FILEHIST, 'filehist']] as const) {
      reg3(code, {
        request: v3.ndmp3_data_start_recover_request,
        reply: v3.ndmp3_data_start_recover_reply,
        handle: async (s, req): Promise<v3.ndmp3_data_start_recover_reply> => {
          await this.dataOf(s).startRecover(mode, req.bu_type, req.env, namesV3(req.nlist))
          return { error: 0 }
        },
      })
    }

    reg4(M4.NDMP4_DATA_ABORT, {
      request: null,
      reply: v4.ndmp4_data_abort_reply,
      handle: (s): v4.ndmp4_data_abort_reply => {
        this.dataOf(s).doAbort()
        return { error: 0 }
      },
    })
    reg3(M3.NDMP3_DATA_ABORT, {
      request: null,
      reply: v3.ndmp3_data_abort_reply,
      handle: (s): v3.ndmp3_data_abort_reply => {
        this.dataOf(s).doAbort()
        return { error: 0 }
      },
    })

    reg4(M4.NDMP4_DATA_STOP, {
      request: null,
      reply: v4.ndmp4_data_stop_reply,
      handle: (s): v4.ndmp4_data_stop_reply => {
        this.dataOf(s).stop()
        return { error: 0 }
      },
    })
    reg3(M3.NDMP3_DATA_STOP, {
      request: null,
      reply: v3.ndmp3_data_stop_reply,
      handle: (s): v3.ndmp3_data_stop_reply => {
        this.dataOf(s).stop()
        return { error: 0 }
      },
    })

    reg4(M4.NDMP4_DATA_GET_ENV, {
      request: null,
      reply: v4.ndmp4_data_get_env_reply,
      handle: (s): v4.ndmp4_data_get_env_reply => ({ error: 0, env: this.dataOf(s).env() }),
    })
    reg3(M3.NDMP3_DATA_GET_ENV, {
      request: null,
      reply: v3.ndmp3_data_get_env_reply,
      handle: (s): v3.ndmp3_data_get_env_reply => ({ error: 0, env: this.dataOf(s).env() }),
    })
  }
}
