/*
 * What an agent posts during a backup, as the job sees it: LOG_MESSAGE into the job log,
 * FH_ADD_FILE / ADD_DIR / ADD_NODE into its file history, and the NOTIFY posts that drive the
 * job (mover paused: a tape change; data or mover halted: the end). draft-skardal-ndmpv4-04 §3.
 * The FH posts and NOTIFY_MOVER_PAUSED have v4's bytes in v3 too; LOG_MESSAGE and the halts go
 * through the agent, which knows its version.
 */
import type { NdmpPost } from '../../client/ndmp/connection.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../xdr/ndmp/message.ts'
import type { HistoryEntry, JobContext } from '../drivers/driver.ts'
import { M } from './agent.ts'
import type { NdmpAgent } from './agent.ts'

export type JobEvent =
  | { kind: 'mover-paused'; reason: number; seek: bigint }
  | { kind: 'mover-halted'; reason: number }
  | { kind: 'data-halted'; reason: number }

const FILE_TYPES: Readonly<Record<number, string>> = { 0: 'dir', 1: 'fifo', 2: 'chr', 3: 'blk', 4: 'file', 5: 'symlink', 6: 'socket', 7: 'registry', 8: 'other' }

function nameOf(names: readonly v4.ndmp4_file_name[]): string {
  const n = names.find((x) => x.fs_type === 0) ?? names[0]
  if (n === undefined) return ''
  // Names are bytes on the wire (ndmp4_path); the history keeps them as UTF-8 text.
  return ('unix_name' in n ? n.unix_name : 'nt_name' in n ? n.nt_name.nt_path : n.other_name).toString('utf8')
}

function statOf(st: v4.ndmp4_file_stat): Pick<HistoryEntry, 'type' | 'size' | 'mtime' | 'mode' | 'uid' | 'gid' | 'atime' | 'ctime'> {
  return { type: FILE_TYPES[st.ftype] ?? 'other', size: String(st.size), mtime: st.mtime, mode: st.fattr, uid: st.owner, gid: st.group, atime: st.atime, ctime: st.ctime }
}

/** Hands a post to the job (logs, history) or returns the event it carries; a post that does not decode is logged. */
export function takePost(post: NdmpPost, ctx: JobContext, from: NdmpAgent): JobEvent | null {
  const agent = from.name
  try {
    switch (post.code) {
      case M.NDMP4_LOG_MESSAGE: {
        const m = from.logMessage(post)
        const level = m.log_type === 2 ? 'error' : m.log_type === 3 ? 'warn' : 'info'
        ctx.log(level, `${agent}: ${m.entry}`)
        return null
      }
      case M.NDMP4_FH_ADD_FILE:
        for (const f of decodeBody(v4.ndmp4_fh_add_file_post, post.body).files) {
          const st = f.stats[0]
          ctx.file({ path: nameOf(f.names), node: String(f.node), fhInfo: String(f.fh_info), ...(st === undefined ? {} : statOf(st)) })
        }
        return null
      case M.NDMP4_FH_ADD_DIR:
        for (const d of decodeBody(v4.ndmp4_fh_add_dir_post, post.body).dirs) ctx.file({ path: nameOf(d.names), node: String(d.node), type: `entry-of:${d.parent}` })
        return null
      case M.NDMP4_FH_ADD_NODE:
        for (const n of decodeBody(v4.ndmp4_fh_add_node_post, post.body).nodes) {
          const st = n.stats[0]
          ctx.file({ path: '', node: String(n.node), fhInfo: String(n.fh_info), ...(st === undefined ? {} : statOf(st)) })
        }
        return null
      case M.NDMP4_NOTIFY_MOVER_PAUSED: {
        const p = decodeBody(v4.ndmp4_notify_mover_paused_post, post.body)
        return { kind: 'mover-paused', reason: p.reason, seek: p.seek_position }
      }
      case M.NDMP4_NOTIFY_MOVER_HALTED:
        return { kind: 'mover-halted', reason: from.haltReason(post) }
      case M.NDMP4_NOTIFY_DATA_HALTED:
        return { kind: 'data-halted', reason: from.haltReason(post) }
      default:
        return null
    }
  } catch (err) {
    ctx.log('warn', `${agent}: a post (0x${post.code.toString(16)}) that does not decode: ${err instanceof Error ? err.message : String(err)}`)
    return null
  }
}
