/*
 * What a Sender (sender.ts) shows of one standby in REPL_STATUS, the metrics
 * and `tsnfs replication status`: alive, last heard, acknowledged position,
 * lag, the state in words, the resync's progress.
 */
import type { ExportRun } from './sender-options.ts'
import type { PeerStatus } from './status.ts'

/** The sender's fields status is computed from. */
export interface SenderView {
  peer: string
  alive: boolean
  lastHeard: number | null
  fenced: bigint | null
  refused: string | null
  deaths: number
  /** A standby within this many changes of the log's end is caught up (streaming). */
  joinWithin: bigint
  runs: readonly ExportRun[]
}

/** Milliseconds the export has been behind (0: caught up, or no such export). */
export function lagMsOf(r: ExportRun | undefined, now: number): number {
  return r?.behindSince === null || r === undefined ? 0 : now - r.behindSince
}

export function peerStatus(v: SenderView, now: number): PeerStatus {
  let acked: bigint | null = null
  let lagOps = 0n
  let lagBytes = 0n
  for (const r of v.runs) {
    if (acked === null || r.acked < acked) acked = r.acked
    const last = r.ex.source.lastSeq()
    if (last > r.acked) lagOps += last - r.acked
    lagBytes += BigInt(r.inFlightBytes + r.ahead.bufferedBytes)
  }
  return {
    node: v.peer,
    address: v.peer,
    role: 'standby',
    alive: v.alive,
    lastHeartbeatAgeMs: v.lastHeard === null ? null : now - v.lastHeard,
    acked: acked ?? 0n,
    lagOps,
    lagBytes,
    state: stateText(v, now),
    deaths: v.deaths,
    resync: {
      count: v.runs.reduce((n, r) => n + r.resyncs, 0),
      running: v.runs.some((r) => r.resyncP0 !== null),
      needed: v.runs.some((r) => r.wantResync),
      dirs: v.runs.reduce((n, r) => n + (r.resync?.dirs ?? 0), 0),
      files: v.runs.reduce((n, r) => n + (r.resync?.files ?? 0), 0),
      bytes: v.runs.reduce((n, r) => n + (r.resync?.dataBytes ?? 0), 0),
    },
  }
}

function stateText(v: SenderView, now: number): string {
  if (v.fenced !== null) return 'fenced'
  if (v.refused !== null) return `refused: ${v.refused}`
  if (!v.alive) return v.lastHeard === null ? 'connecting' : 'dead'
  const stopped = v.runs.find((r) => r.stopped !== null)
  if (stopped !== undefined) return stopped.stopped ?? ''
  const resyncing = v.runs.find((r) => r.resyncP0 !== null)
  const c = resyncing?.resync
  if (c !== undefined && c !== null) return `resync ${String(c.dirs)} dirs ${String(c.files)} files ${String(Math.round(c.dataBytes / 1048576))} MiB`
  if (v.runs.some((r) => r.wantResync)) return 'needs resync'
  const over = v.runs.find((r) => r.ex.mode === 'async' && r.ex.lagBoundMs !== undefined && lagMsOf(r, now) > r.ex.lagBoundMs)
  if (over !== undefined) return `lagging ${String(Math.round(lagMsOf(over, now)))} ms`
  const behind = v.runs.some((r) => r.ex.source.lastSeq() - r.acked > v.joinWithin)
  return behind ? 'catching-up' : 'streaming'
}
