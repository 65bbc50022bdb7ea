/*
 * Fencing at start (issue 15 §5): a former primary restarted after a
 * standby took over must not take a single write. Its node state still says
 * primary (it was down when the standby raised the epoch), so before it
 * serves it asks every standby once for its epoch. A standby serving a
 * higher epoch answers REPL_STALE_EPOCH: this node records itself fenced and
 * does not start. A standby that does not answer within the timeout counts
 * as dead, as the sender would judge it; the node serves without it (an
 * operator who wants a witness for that case has the quorum probe).
 */
import {
  TSNFS_REPL_PROG,
  repl_heartbeat_args,
  repl_heartbeat_res,
  repl_stat as STAT,
  repl_statNames,
} from '../../xdr/generated/replication.ts'
import { StreamCaller } from '../callback/stream.ts'
import type { Logger } from '../logger.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const HEARTBEAT = { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_HEARTBEAT.proc }

export type PeerEpoch =
  | { peer: string; kind: 'same' }
  | { peer: string; kind: 'newer'; epoch: bigint }
  | { peer: string; kind: 'unreachable'; why: string }
  | { peer: string; kind: 'refused'; status: string }

/** Asks one standby, by heartbeat, whether it serves an epoch above `epoch`. */
export async function probePeerEpoch(
  s: { host: string; port: number },
  epoch: bigint,
  node: string,
  timeoutMs: number,
): Promise<PeerEpoch> {
  const peer = `${s.host}:${String(s.port)}`
  let c: StreamCaller | null = null
  try {
    c = await StreamCaller.open({ host: s.host, port: s.port }, { timeoutMs })
    const res: repl_heartbeat_res = await c.call(HEARTBEAT, repl_heartbeat_args, { epoch, node: Buffer.from(node) }, repl_heartbeat_res)
    if (res.status === STAT.REPL_OK) return { peer, kind: 'same' }
    if (res.status === STAT.REPL_STALE_EPOCH) return { peer, kind: 'newer', epoch: res.epoch }
    return { peer, kind: 'refused', status: repl_statNames[res.status] ?? String(res.status) }
  } catch (err) {
    return { peer, kind: 'unreachable', why: err instanceof Error ? err.message : String(err) }
  } finally {
    c?.close()
  }
}

/** Every standby, in parallel; the highest newer epoch any of them reports, or null. */
export async function newestPeerEpoch(
  standbys: readonly { host: string; port: number }[],
  epoch: bigint,
  node: string,
  timeoutMs: number,
  log: Logger,
): Promise<bigint | null> {
  const answers = await Promise.all(standbys.map((s) => probePeerEpoch(s, epoch, node, timeoutMs)))
  let newest: bigint | null = null
  for (const a of answers) {
    if (a.kind === 'newer') {
      if (newest === null || a.epoch > newest) newest = a.epoch
    } else if (a.kind === 'unreachable') {
      log.warn({ peer: a.peer, why: a.why }, 'replication: standby unreachable at start; serving without it until it answers')
    } else if (a.kind === 'refused') {
      log.warn({ peer: a.peer, status: a.status }, 'replication: standby refused the start check')
    }
  }
  return newest
}
