/*
 * What a StandbyService (standby-service.ts) is given (its options and
 * exports) and keeps: the attached primary, each export's apply chain and
 * failure, the resync's progress, and the reply types its calls share.
 */
import type { ChangeTarget } from '../../vfs/replica/change.ts'
import type { repl_stat, repl_stat as STAT } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import type { NodeState } from './node-state.ts'
import type { ResyncTarget } from './resync-target.ts'
import type { PeerStatus } from './status.ts'

export interface StandbyExport {
  id: number
  /** The export's path as the primary names it (repl_export.path). */
  path: string
  target: ChangeTarget
  /** The full resync's side (resync-target.ts); without it RESYNC_* calls get REPL_NEED_RESYNC. */
  resync?: ResyncTarget
}

export interface StandbyOptions {
  state: NodeState
  exports: readonly StandbyExport[]
  log: Logger
  /** Called once this node has become primary (durably), with its new epoch. */
  onTakeover?: (epoch: bigint) => void | Promise<void>
  /** A primary not heard for this long no longer blocks a takeover or another primary's HELLO (default 5000 ms). */
  attachTimeoutMs?: number
  /** APPENDs waiting per export beyond the one applying; more are refused with REPL_BUSY (default 16). */
  maxQueued?: number
  /** Peers to report in STATUS besides the attached primary (a primary's senders). */
  peers?: () => PeerStatus[]
  now?: () => number
}

export interface Attached {
  node: string
  epoch: bigint
  address: string
  /** The connection the HELLO came on (its close signal is its identity). */
  conn: AbortSignal
  lastSeen: number
}

export interface ExportState {
  readonly ex: StandbyExport
  /** The end of the chain of APPENDs for this export: one applies at a time. */
  tail: Promise<void>
  queued: number
  failed: FailStat | null
  /** Why and since when (Unix ms) the export is full, while `failed` is REPL_NOSPC: for this node's own status. */
  full: { code: string; sinceMs: number } | null
  /** The P0 of the resync running (RESYNC_BEGIN seen, RESYNC_END not yet). */
  resyncing: bigint | null
  progress: ResyncProgress
}

/** What the standby has taken of the resync running (or the last one). */
export interface ResyncProgress {
  dirs: number
  files: number
  bytes: number
}

/** Every RESYNC_* failure reply fits both result unions. */
export type RsFail = { status: typeof STAT.REPL_STALE_EPOCH; epoch: bigint } | { status: Exclude<repl_stat, 0 | 5> }

/** Why an export stopped taking changes until an operator (or a resync) repairs it. */
export type FailStat = typeof STAT.REPL_NOSPC | typeof STAT.REPL_NEED_RESYNC

export interface CallOrigin {
  /** Fires when the caller's connection closes. */
  conn: AbortSignal
  address: string
}
