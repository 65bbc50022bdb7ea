/*
 * A DataPeer over an NDMP session: each call becomes the session version's post, built by the
 * one set of typed posts (server/ndmp/posts.ts: NOTIFY, LOG and FH in v3 and v4, draft §3.10–3.12).
 * Posts are fire-and-forget except file history, whose promise paces the backup; a post on a
 * closed session is dropped (the job is being torn down by the session's close hook anyway).
 */
import { postDataHalted, postDataRead, postFhAddDir, postFhAddFile, postFhAddNode, postLog, postLogFile } from '../posts.ts'
import type { FhStat as PostStat, NdmpFileType } from '../posts.ts'
import type { NdmpSession } from '../service-types.ts'
import type { FhBatch, FhStat } from './file-history.ts'
import type { DataPeer } from './peer.ts'
import type { DataHaltReason } from './state.ts'

const HALT_TEXT: Record<DataHaltReason, string> = { 0: '', 1: 'successful', 2: 'aborted', 3: 'internal error', 4: 'data connection error' }

/** NDMP strings are opaque bytes here: names of any encoding travel as the backup read them. */
function pathBytes(name: string): Buffer {
  return Buffer.from(name, 'utf8')
}

function statOf(s: FhStat): PostStat {
  return { type: s.ftype as NdmpFileType, mtime: s.mtime, atime: s.atime, ctime: s.ctime, uid: s.owner, gid: s.group, mode: s.fattr, size: s.size, links: s.links }
}

export function sessionPeer(session: NdmpSession): DataPeer {
  const quiet = (p: Promise<void>): void => {
    p.catch(() => undefined)
  }
  return {
    log(type, message) {
      quiet(postLog(session, type, message))
    },
    logFile(name, status) {
      quiet(postLogFile(session, name, status))
    },
    fileHistory(b: FhBatch) {
      switch (b.kind) {
        case 'file':
          return postFhAddFile(session, b.files.map((f) => ({ path: pathBytes(f.name), stat: statOf(f.stat), node: f.node, fhInfo: f.fhInfo })))
        case 'dir':
          return postFhAddDir(session, b.dirs.map((d) => ({ name: pathBytes(d.name), node: d.node, parent: d.parent })))
        case 'node':
          return postFhAddNode(session, b.nodes.map((n) => ({ stat: statOf(n.stat), node: n.node, fhInfo: n.fhInfo })))
      }
    },
    dataRead(offset, length) {
      quiet(postDataRead(session, offset, length))
    },
    halted(reason) {
      quiet(postDataHalted(session, reason, HALT_TEXT[reason]))
    },
  }
}
