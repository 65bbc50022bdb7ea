/*
 * Typed posts for the services (NOTIFY, LOG and FH, draft-skardal-ndmpv4-04 §11-13): one call
 * whatever the session's version, the body built with that version's codec. The enum values the
 * callers pass (halt and pause reasons, log types, file types, recovery status) are the same
 * numbers in v3 and v4; only the body layouts differ (v3 halts carry a text reason, v3 LOG_FILE
 * an ndmp3_error, v3 file stats "invalid" where v4 says "unsupported").
 */
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import type { NdmpSession } from './service-types.ts'

export type DataHaltReason = v4.ndmp4_data_halt_reason
export type MoverHaltReason = v4.ndmp4_mover_halt_reason
export type MoverPauseReason = v4.ndmp4_mover_pause_reason
export type RecoveryStatus = v4.ndmp4_recovery_status
/** NDMP file types (ndmpN_file_type: DIR 0, FIFO 1, CSPEC 2, BSPEC 3, REG 4, SLINK 5, SOCK 6, REGISTRY 7, OTHER 8). */
export type NdmpFileType = v4.ndmp4_file_type
export type LogType = 'normal' | 'debug' | 'error' | 'warning'

const LOG_TYPES = { normal: 0, debug: 1, error: 2, warning: 3 } as const

/** NOTIFY_DATA_HALTED: the data operation ended (v3 also says why in text). */
export function postDataHalted(s: NdmpSession, reason: DataHaltReason, text = ''): Promise<void> {
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_NOTIFY_DATA_HALTED, v4.ndmp4_notify_data_halted_post, { reason })
  return s.post(v3.ndmp3_message.NDMP3_NOTIFY_DATA_HALTED, v3.ndmp3_notify_data_halted_request, { reason, text_reason: text })
}

/** NOTIFY_MOVER_HALTED. */
export function postMoverHalted(s: NdmpSession, reason: MoverHaltReason, text = ''): Promise<void> {
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_NOTIFY_MOVER_HALTED, v4.ndmp4_notify_mover_halted_post, { reason })
  return s.post(v3.ndmp3_message.NDMP3_NOTIFY_MOVER_HALTED, v3.ndmp3_notify_mover_halted_request, { reason, text_reason: text })
}

/** NOTIFY_MOVER_PAUSED: end of medium, end of window, a seek... (the DMA answers with MOVER_CONTINUE / SET_WINDOW). */
export function postMoverPaused(s: NdmpSession, reason: MoverPauseReason, seekPosition: bigint): Promise<void> {
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_NOTIFY_MOVER_PAUSED, v4.ndmp4_notify_mover_paused_post, { reason, seek_position: seekPosition })
  return s.post(v3.ndmp3_message.NDMP3_NOTIFY_MOVER_PAUSED, v3.ndmp3_notify_mover_paused_request, { reason, seek_position: seekPosition })
}

/** NOTIFY_DATA_READ: the data service needs the stream from `offset` (direct access recovery). */
export function postDataRead(s: NdmpSession, offset: bigint, length: bigint): Promise<void> {
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_NOTIFY_DATA_READ, v4.ndmp4_notify_data_read_post, { offset, length })
  return s.post(v3.ndmp3_message.NDMP3_NOTIFY_DATA_READ, v3.ndmp3_notify_data_read_request, { offset, length })
}

const messageIds = new WeakMap<NdmpSession, number>()

/** LOG_MESSAGE: a line for the DMA's job log. message_id counts per session. */
export function postLog(s: NdmpSession, type: LogType, entry: string): Promise<void> {
  const id = (messageIds.get(s) ?? 0) + 1
  messageIds.set(s, id)
  const log_type = LOG_TYPES[type]
  if (s.version === 4) {
    return s.post(v4.ndmp4_message.NDMP4_LOG_MESSAGE, v4.ndmp4_log_message_post, { log_type, message_id: id, entry, associated_message_valid: 0, associated_message_sequence: 0 })
  }
  return s.post(v3.ndmp3_message.NDMP3_LOG_MESSAGE, v3.ndmp3_log_message_request, { log_type, message_id: id, entry })
}

/** v3 reports a recovered file's fate as an ndmp3_error. */
const V3_RECOVERY_ERROR: Readonly<Record<RecoveryStatus, v3.ndmp3_error>> = {
  0: v3.ndmp3_error.NDMP3_NO_ERR,
  1: v3.ndmp3_error.NDMP3_PERMISSION_ERR,
  2: v3.ndmp3_error.NDMP3_FILE_NOT_FOUND_ERR,
  3: v3.ndmp3_error.NDMP3_FILE_NOT_FOUND_ERR,
  4: v3.ndmp3_error.NDMP3_NO_MEM_ERR,
  5: v3.ndmp3_error.NDMP3_IO_ERR,
  6: v3.ndmp3_error.NDMP3_UNDEFINED_ERR,
}

/** LOG_FILE: one file of a recover list, recovered or not. */
export function postLogFile(s: NdmpSession, name: string, status: RecoveryStatus): Promise<void> {
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_LOG_FILE, v4.ndmp4_log_file_post, { name, recovery_status: status })
  return s.post(v3.ndmp3_message.NDMP3_LOG_FILE, v3.ndmp3_log_file_request, { name, error: V3_RECOVERY_ERROR[status] })
}

/** What FH posts say of a file (times in seconds since the epoch; the mode bits in `mode`). */
export interface FhStat {
  type: NdmpFileType
  mtime: number
  atime: number
  ctime: number
  uid: number
  gid: number
  mode: number
  size: bigint
  links: number
}

export interface FhFile {
  /** The path as the DMA's catalog keeps it (bytes: names need not be UTF-8). */
  path: Buffer
  stat: FhStat
  /** The file's node (inode) number. */
  node: bigint
  /** Where the file starts in the backup stream, for direct access recovery. */
  fhInfo: bigint
}

export interface FhDir {
  /** One name within the directory `parent`. */
  name: Buffer
  node: bigint
  parent: bigint
}

export interface FhNode {
  stat: FhStat
  node: bigint
  fhInfo: bigint
}

/** Seconds fit the u_long fields until 2106; earlier and later clamp. */
function secs(n: number): number {
  return Math.min(Math.max(Math.floor(n), 0), 0xffff_ffff)
}

function stat4(st: FhStat): v4.ndmp4_file_stat {
  return {
    unsupported: 0,
    fs_type: v4.ndmp4_fs_type.NDMP4_FS_UNIX,
    ftype: st.type,
    mtime: secs(st.mtime),
    atime: secs(st.atime),
    ctime: secs(st.ctime),
    owner: st.uid >>> 0,
    group: st.gid >>> 0,
    fattr: st.mode >>> 0,
    size: st.size,
    links: st.links >>> 0,
  }
}

function stat3(st: FhStat): v3.ndmp3_file_stat {
  const { unsupported, ...rest } = stat4(st)
  return { invalid: unsupported, ...rest }
}

/** FH_ADD_FILE: file history by full path (the "tar" butype's BACKUP_FH_FILE). */
export function postFhAddFile(s: NdmpSession, files: readonly FhFile[]): Promise<void> {
  if (s.version === 4) {
    const body = { files: files.map((f) => ({ names: [{ fs_type: 0 as const, unix_name: f.path }], stats: [stat4(f.stat)], node: f.node, fh_info: f.fhInfo })) }
    return s.post(v4.ndmp4_message.NDMP4_FH_ADD_FILE, v4.ndmp4_fh_add_file_post, body)
  }
  const body = { files: files.map((f) => ({ names: [{ fs_type: 0 as const, unix_name: f.path }], stats: [stat3(f.stat)], node: f.node, fh_info: f.fhInfo })) }
  return s.post(v3.ndmp3_message.NDMP3_FH_ADD_FILE, v3.ndmp3_fh_add_file_request, body)
}

/** FH_ADD_DIR: directory entries by node (the node-based history, BACKUP_FH_DIR). */
export function postFhAddDir(s: NdmpSession, dirs: readonly FhDir[]): Promise<void> {
  const body = { dirs: dirs.map((d) => ({ names: [{ fs_type: 0 as const, unix_name: d.name }], node: d.node, parent: d.parent })) }
  if (s.version === 4) return s.post(v4.ndmp4_message.NDMP4_FH_ADD_DIR, v4.ndmp4_fh_add_dir_post, body)
  return s.post(v3.ndmp3_message.NDMP3_FH_ADD_DIR, v3.ndmp3_fh_add_dir_request, body)
}

/** FH_ADD_NODE: the attributes of nodes named by FH_ADD_DIR. */
export function postFhAddNode(s: NdmpSession, nodes: readonly FhNode[]): Promise<void> {
  if (s.version === 4) {
    return s.post(v4.ndmp4_message.NDMP4_FH_ADD_NODE, v4.ndmp4_fh_add_node_post, { nodes: nodes.map((n) => ({ stats: [stat4(n.stat)], node: n.node, fh_info: n.fhInfo })) })
  }
  return s.post(v3.ndmp3_message.NDMP3_FH_ADD_NODE, v3.ndmp3_fh_add_node_request, { nodes: nodes.map((n) => ({ stats: [stat3(n.stat)], node: n.node, fh_info: n.fhInfo })) })
}
