/*
 * The sync-mode gate (issue 15 §4): a reply that promises stability waits
 * until every live standby in the export's sync set has acknowledged its
 * change as durable. The change log calls hook(exportId) as its `durable`
 * gate after its own fsync.
 *
 * The senders keep the set: a standby joins once it has caught up (so a
 * returning standby does not stall writers for its whole catch-up), acks as
 * its replies come in, and leaves when it is declared dead after the
 * heartbeat timeout, fails (NOSPC), needs a resync or fences us. Leaving
 * re-checks the waiters, which is what releases them when a standby dies.
 * With no live member the gate opens at once, and status() says so.
 *
 * Async mode: the gate is always open; the sender ships as fast as it can
 * and reports a lag over the export's bound (`lag=` ms) in its status.
 */
import type { Logger } from '../logger.ts'

export type ReplicationMode = 'sync' | 'async'

export interface GateExportConfig {
  mode: ReplicationMode
  /** async: the lag the sender is expected to stay within, in ms (reported when exceeded). */
  lagBoundMs?: number
}

export interface GateExportStatus {
  exportId: number
  mode: ReplicationMode
  lagBoundMs: number | null
  /** Sync-set members and what each has acknowledged. */
  members: { peer: string; acked: bigint }[]
  /** Replies waiting. */
  waiting: number
  /** sync mode with no live standby: stable replies are promised by this node alone. */
  noLiveStandby: boolean
  /** Waits that opened with nobody to wait for. */
  openedAlone: number
}

interface Waiter {
  seq: bigint
  resolve: () => void
}

interface ExportGate {
  config: GateExportConfig
  members: Map<string, bigint>
  /** Sorted by seq (appends are mostly in order; a late one is inserted). */
  waiters: Waiter[]
  openedAlone: number
}

export class SyncGate {
  private readonly exports = new Map<number, ExportGate>()
  private readonly log: Logger

  constructor(log: Logger) {
    this.log = log
  }

  /** Sets an export's mode; an export never configured is async. */
  configure(exportId: number, config: GateExportConfig): void {
    const g = this.exports.get(exportId)
    if (g === undefined) this.exports.set(exportId, { config, members: new Map(), waiters: [], openedAlone: 0 })
    else {
      g.config = config
      this.release(g)
    }
  }

  /** Resolves once every live sync standby of the export has acknowledged `seq` (at once in async mode or with none). */
  wait(exportId: number, seq: bigint): Promise<void> {
    const g = this.exports.get(exportId)
    if (g === undefined || g.config.mode === 'async') return Promise.resolve()
    if (g.members.size === 0) {
      g.openedAlone++
      return Promise.resolve()
    }
    if (seq <= this.floor(g)) return Promise.resolve()
    return new Promise((resolve) => {
      let i = g.waiters.length
      while (i > 0 && (g.waiters[i - 1] as Waiter).seq > seq) i--
      g.waiters.splice(i, 0, { seq, resolve })
    })
  }

  /** The change log's `durable` gate for one export. */
  hook(exportId: number): (seq: bigint) => Promise<void> {
    return (seq) => this.wait(exportId, seq)
  }

  /** `peer` is caught up on the export and from now on every sync reply waits for it. */
  join(peer: string, exportId: number, acked: bigint): void {
    const g = this.exports.get(exportId)
    if (g === undefined || g.members.has(peer)) return
    g.members.set(peer, acked)
    this.log.info({ peer, exportId }, 'replication: standby joined the sync set')
  }

  ack(peer: string, exportId: number, seq: bigint): void {
    const g = this.exports.get(exportId)
    const had = g?.members.get(peer)
    if (g === undefined || had === undefined || seq <= had) return
    g.members.set(peer, seq)
    this.release(g)
  }

  /** `peer` no longer counts for the export (or for every export): its waiters are re-checked. */
  leave(peer: string, reason: string, exportId?: number): void {
    for (const [id, g] of this.exports) {
      if (exportId !== undefined && id !== exportId) continue
      if (!g.members.delete(peer)) continue
      this.log.warn({ peer, exportId: id, reason }, 'replication: standby left the sync set')
      this.release(g)
    }
  }

  isMember(peer: string, exportId: number): boolean {
    return this.exports.get(exportId)?.members.has(peer) === true
  }

  /** Whether a sync reply of some export waits for `peer` (what a reply's cached copy waits for too: drc-ship.ts). */
  waitsFor(peer: string): boolean {
    for (const g of this.exports.values()) if (g.config.mode === 'sync' && g.members.has(peer)) return true
    return false
  }

  status(): GateExportStatus[] {
    return [...this.exports].map(([exportId, g]) => ({
      exportId,
      mode: g.config.mode,
      lagBoundMs: g.config.lagBoundMs ?? null,
      members: [...g.members].map(([peer, acked]) => ({ peer, acked })),
      waiting: g.waiters.length,
      noLiveStandby: g.config.mode === 'sync' && g.members.size === 0,
      openedAlone: g.openedAlone,
    }))
  }

  /** The lowest acknowledgement over the members (every one has at least this much). */
  private floor(g: ExportGate): bigint {
    let min: bigint | null = null
    for (const acked of g.members.values()) if (min === null || acked < min) min = acked
    return min ?? 0n
  }

  private release(g: ExportGate): void {
    if (g.waiters.length === 0) return
    const open = g.config.mode === 'async' || g.members.size === 0
    const floor = this.floor(g)
    let n = 0
    while (n < g.waiters.length && (open || (g.waiters[n] as Waiter).seq <= floor)) n++
    if (n === 0) return
    if (open && g.config.mode === 'sync') g.openedAlone += n
    for (const w of g.waiters.splice(0, n)) w.resolve()
  }
}
