/*
 * What a Sender (sender.ts) is given and keeps: its options, the exports it
 * ships, its counters, and its state per export.
 */
import type { Logger } from '../logger.ts'
import type { ReadAhead } from './batch.ts'
import type { ReplicationMode, SyncGate } from './gate.ts'
import type { ChangeSource, DataSource } from './log-types.ts'
import type { ResyncCounters, ResyncTree } from './resync.ts'

export interface SenderExport {
  id: number
  path: string
  mode: ReplicationMode
  /** async: the lag to stay within, ms (a lag over it is logged and shown in status). */
  lagBoundMs?: number
  source: ChangeSource
  data: DataSource
  /** The replicating layer, walked by a full resync (absent: an export that needs one stops). */
  tree?: ResyncTree
  /** Compare checksums of every file whose size and mtime agree (--resync-verify). */
  verify?: boolean
}

export interface HelloInfo {
  handleKey: Buffer
  exportList: Buffer
  mountList: Buffer
}

export interface SenderOptions {
  host: string
  port: number
  cluster: string
  node: string
  epoch: () => bigint
  hello: () => HelloInfo | Promise<HelloInfo>
  exports: readonly SenderExport[]
  gate: SyncGate
  log: Logger
  heartbeatMs?: number
  timeoutMs?: number
  /**
   * How long an APPEND's reply may take while heartbeats are answered (a large batch flushed on a
   * slow disk), ms; default sender.ts APPEND_TIMEOUT_MS, never below timeoutMs. Sync replies wait
   * this long for a standby that answers heartbeats but not an APPEND before it leaves the sync set.
   */
  appendTimeoutMs?: number
  maxInFlight?: number
  batchChanges?: number
  batchBytes?: number
  /** async exports: how long a partial batch waits for more changes before it goes, ms (gather.ts ASYNC_GATHER_MS; 0: at once). */
  asyncGatherMs?: number
  reconnectMinMs?: number
  reconnectMaxMs?: number
  /** The standby answered REPL_STALE_EPOCH: another node is primary now; this one must stop taking writes. */
  onFenced?: (theirEpoch: bigint) => void
  /** The export can no longer be shipped from the log (trimmed past the standby, or the standby diverged). */
  onNeedsResync?: (exportId: number, why: string) => void
}

export interface SenderCounters {
  /** Times the standby was declared dead (heartbeat timeout). */
  deaths: number
  connects: number
  appends: number
  changes: number
  bytes: number
  gaps: number
  /** Replies that claimed changes this connection never sent (the session was ended for each). */
  violations: number
  /** Most APPENDs of one export in flight at once (the pipeline at work). */
  peakInFlight: number
}

/** One export as a sender ships it (sender.ts; sender-status.ts reads it). */
export interface ExportRun {
  readonly ex: SenderExport
  readonly ahead: ReadAhead
  /** The standby's durable position. */
  acked: bigint
  /** Set when shipping this export stopped for good (until a resync or a restart). */
  stopped: string | null
  /** The next session starts with a full resync. */
  wantResync: boolean
  /** The P0 of the resync running: the log is kept from it. */
  resyncP0: bigint | null
  /** The running (or last) resync's counters. */
  resync: ResyncCounters | null
  resyncs: number
  /** Bytes in APPENDs in flight. */
  inFlightBytes: number
  /** When the oldest unshipped change was first seen (caught up: null). */
  behindSince: number | null
  overBound: boolean
}
