/*
 * A DataPeer over an NDMP session: each call becomes the session version's post (draft §3.10
 * NOTIFY, §3.11 LOG, §3.12 FH; v3 has the same codes and nearly the same bodies: its LOG_FILE
 * carries an ndmp3_error where v4 has a recovery status, its LOG_MESSAGE has no associated
 * message, its NOTIFY_DATA_HALTED a text reason). Posts are fire-and-forget except file history,
 * whose promise paces the backup; a post on a closed session is dropped (the job is being torn
 * down by the session's close hook anyway).
 */
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import type { NdmpSession } from '../service-types.ts'
import type { FhBatch, FhStat } from './file-history.ts'
import type { DataPeer, PeerLogType } from './peer.ts'
import { RecoveryStatus } from './peer.ts'
import type { DataHaltReason } from './state.ts'

const LOG_TYPE: Record<PeerLogType, 0 | 1 | 2 | 3> = { normal: 0, debug: 1, error: 2, warning: 3 }

/** v3 LOG_FILE carries an error, not a status: success is NO_ERR, the rest the nearest error. */
const V3_FILE_ERROR: Record<RecoveryStatus, v3.ndmp3_error> = {
  [RecoveryStatus.SUCCESSFUL]: v3.ndmp3_error.NDMP3_NO_ERR,
  [RecoveryStatus.FAILED_PERMISSION]: v3.ndmp3_error.NDMP3_PERMISSION_ERR,
  [RecoveryStatus.FAILED_NOT_FOUND]: v3.ndmp3_error.NDMP3_FILE_NOT_FOUND_ERR,
  [RecoveryStatus.FAILED_NO_DIRECTORY]: v3.ndmp3_error.NDMP3_FILE_NOT_FOUND_ERR,
  [RecoveryStatus.FAILED_OUT_OF_MEMORY]: v3.ndmp3_error.NDMP3_NO_MEM_ERR,
  [RecoveryStatus.FAILED_IO_ERROR]: v3.ndmp3_error.NDMP3_IO_ERR,
  [RecoveryStatus.FAILED_UNDEFINED_ERROR]: v3.ndmp3_error.NDMP3_UNDEFINED_ERR,
}

const HALT_TEXT: Record<DataHaltReason, string> = { 0: '', 1: 'successful', 2: 'aborted', 3: 'internal error', 4: 'data connection error' }

/** NDMP strings are opaque bytes here: names of any encoding travel as the backup read them. */
function pathBytes(name: string): Buffer {
  return Buffer.from(name, 'utf8')
}

function stat4(s: FhStat): v4.ndmp4_file_stat {
  return { unsupported: 0, fs_type: 0, ftype: s.ftype as v4.ndmp4_file_type, mtime: s.mtime, atime: s.atime, ctime: s.ctime, owner: s.owner, group: s.group, fattr: s.fattr, size: s.size, links: s.links }
}

function stat3(s: FhStat): v3.ndmp3_file_stat {
  return { invalid: 0, fs_type: 0, ftype: s.ftype as v3.ndmp3_file_type, mtime: s.mtime, atime: s.atime, ctime: s.ctime, owner: s.owner, group: s.group, fattr: s.fattr, size: s.size, links: s.links }
}

export function sessionPeer(session: NdmpSession): DataPeer {
  let messageId = 0
  const send = <T>(code: number, codec: Codec<T>, body: T): Promise<void> => session.post(code, codec, body)
  const quiet = (p: Promise<void>): void => {
    p.catch(() => undefined)
  }
  if (session.version === 4) {
    return {
      log(type, message) {
        quiet(send(v4.ndmp4_message.NDMP4_LOG_MESSAGE, v4.ndmp4_log_message_post, {
          log_type: LOG_TYPE[type],
          message_id: ++messageId,
          entry: message,
          associated_message_valid: 0,
          associated_message_sequence: 0,
        }))
      },
      logFile(name, status) {
        quiet(send(v4.ndmp4_message.NDMP4_LOG_FILE, v4.ndmp4_log_file_post, { name, recovery_status: status }))
      },
      fileHistory(b: FhBatch) {
        switch (b.kind) {
          case 'file':
            return send(v4.ndmp4_message.NDMP4_FH_ADD_FILE, v4.ndmp4_fh_add_file_post, {
              files: b.files.map((f) => ({ names: [{ fs_type: 0 as const, unix_name: pathBytes(f.name) }], stats: [stat4(f.stat)], node: f.node, fh_info: f.fhInfo })),
            })
          case 'dir':
            return send(v4.ndmp4_message.NDMP4_FH_ADD_DIR, v4.ndmp4_fh_add_dir_post, {
              dirs: b.dirs.map((d) => ({ names: [{ fs_type: 0 as const, unix_name: pathBytes(d.name) }], node: d.node, parent: d.parent })),
            })
          case 'node':
            return send(v4.ndmp4_message.NDMP4_FH_ADD_NODE, v4.ndmp4_fh_add_node_post, {
              nodes: b.nodes.map((n) => ({ stats: [stat4(n.stat)], node: n.node, fh_info: n.fhInfo })),
            })
        }
      },
      dataRead(offset, length) {
        quiet(send(v4.ndmp4_message.NDMP4_NOTIFY_DATA_READ, v4.ndmp4_notify_data_read_post, { offset, length }))
      },
      halted(reason) {
        quiet(send(v4.ndmp4_message.NDMP4_NOTIFY_DATA_HALTED, v4.ndmp4_notify_data_halted_post, { reason }))
      },
    }
  }
  return {
    log(type, message) {
      quiet(send(v3.ndmp3_message.NDMP3_LOG_MESSAGE, v3.ndmp3_log_message_request, { log_type: LOG_TYPE[type], message_id: ++messageId, entry: message }))
    },
    logFile(name, status) {
      quiet(send(v3.ndmp3_message.NDMP3_LOG_FILE, v3.ndmp3_log_file_request, { name, error: V3_FILE_ERROR[status] }))
    },
    fileHistory(b: FhBatch) {
      switch (b.kind) {
        case 'file':
          return send(v3.ndmp3_message.NDMP3_FH_ADD_FILE, v3.ndmp3_fh_add_file_request, {
            files: b.files.map((f) => ({ names: [{ fs_type: 0 as const, unix_name: pathBytes(f.name) }], stats: [stat3(f.stat)], node: f.node, fh_info: f.fhInfo })),
          })
        case 'dir':
          return send(v3.ndmp3_message.NDMP3_FH_ADD_DIR, v3.ndmp3_fh_add_dir_request, {
            dirs: b.dirs.map((d) => ({ names: [{ fs_type: 0 as const, unix_name: pathBytes(d.name) }], node: d.node, parent: d.parent })),
          })
        case 'node':
          return send(v3.ndmp3_message.NDMP3_FH_ADD_NODE, v3.ndmp3_fh_add_node_request, {
            nodes: b.nodes.map((n) => ({ stats: [stat3(n.stat)], node: n.node, fh_info: n.fhInfo })),
          })
      }
    },
    dataRead(offset, length) {
      quiet(send(v3.ndmp3_message.NDMP3_NOTIFY_DATA_READ, v3.ndmp3_notify_data_read_request, { offset, length }))
    },
    halted(reason) {
      quiet(send(v3.ndmp3_message.NDMP3_NOTIFY_DATA_HALTED, v3.ndmp3_notify_data_halted_request, { reason, text_reason: HALT_TEXT[reason] }))
    },
  }
}
