/*
 * A primary's replication (server/replication/README.md): every export's
 * backend is wrapped in a ReplicatingVfs whose changes go to the export's
 * change log (STATE-DIR/replication/EXPORT-ID/), and one Sender per standby
 * ships the logs. The server asks for the wrapping through `factories()`
 * and starts the senders once its backends are open (`start()`).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { HeldChange } from '../../vfs/replica/held-changes.ts'
import { IdMap } from '../../vfs/replica/id-map.ts'
import { ReplicatingVfs } from '../../vfs/replica/replicating-vfs.ts'
import type { Vfs } from '../../vfs/types.ts'
import type { BackendFactory } from '../backends.ts'
import type { Export } from '../exports/table.ts'
import type { Logger } from '../logger.ts'
import { ChangeLog } from './change-log.ts'
import type { LogIo } from './change-log.ts'
import { checkpointMap, recoverMap } from './map-recovery.ts'
import { SyncGate } from './gate.ts'
import type { ReplicationMode } from './gate.ts'
import { NodeState, replicationDir } from './node-state.ts'
import { Sender } from './sender.ts'
import { DuplicateRequestCache } from '../rpc/drc.ts'
import { RepliesShipper, shipsReply } from './drc-ship.ts'
import type { SenderExport } from './sender.ts'
import { newestPeerEpoch } from './start-check.ts'
import type { NodeStatus } from './status.ts'

export interface StandbyAddress {
  host: string
  port: number
}

export interface PrimaryOptions {
  stateDir: string
  cluster: string
  node: string
  standbys: readonly StandbyAddress[]
  mode: ReplicationMode
  /** async: the lag the senders should stay within (ms). */
  lagBoundMs?: number
  heartbeatMs?: number
  timeoutMs?: number
  /** How long an APPEND's reply may take while heartbeats are answered (SenderOptions.appendTimeoutMs). */
  appendTimeoutMs?: number
  /** The export list file as given to the server, sent to the standbys (HELLO). */
  exportListText?: Buffer
  log: Logger
  /** A standby says another node is primary now (a higher epoch): stop taking writes. */
  onFenced?: (theirEpoch: bigint) => void
  /** Id maps already open, by export id (a standby taking over keeps the ones it applied with). */
  maps?: ReadonlyMap<number, IdMap>
  /** A full resync compares checksums of every file whose size and mtime agree (--resync-verify). */
  resyncVerify?: boolean
  /**
   * Log kept per export for standbys that have not acknowledged it, dead ones included (--log-keep,
   * default 1 GiB): past it the oldest segments go and such a standby needs a full resync.
   */
  logKeepBytes?: number
  /** How often segments every standby has acknowledged are trimmed (default 10 s). */
  trimIntervalMs?: number
  /** Change log segment size (default 64 MiB; tests make it small to see trimming). */
  logSegmentBytes?: number
  /** The change logs' writes and flushes (tests inject failures, as change-log.test.ts does). */
  logIo?: LogIo
}

/** One export as the replication holds it. */
interface Replicated {
  path: string
  vfs: ReplicatingVfs
  log: ChangeLog
}

/** The map, the log and the layer of one export, opened over its backend. */
export interface ReplicaParts {
  map: IdMap
  log: ChangeLog
  vfs: ReplicatingVfs
}

/**
 * Opens an export's id map and change log and wraps `backend` in the
 * replicating layer; its close() closes all three. `epoch` is the node's:
 * a map of an older epoch (a standby taking over) moves to it, so the vids
 * it hands out from now on are this epoch's.
 */
export async function openReplica(stateDir: string, exportId: number, backend: Vfs, epoch: bigint, gate?: (seq: bigint) => Promise<void>, map?: IdMap, logSizes?: { keep?: number; segment?: number; io?: LogIo }): Promise<ReplicaParts> {
  const dir = join(replicationDir(stateDir), String(exportId))
  const ids = map ?? (await IdMap.open({ dir: join(dir, 'map'), root: backend.root(), epoch: Number(epoch) }))
  if (BigInt(ids.epoch) < epoch) {
    ids.setEpoch(Number(epoch))
    await ids.flush()
  }
  // The log carries the map's binds (map-recovery.ts): before it deletes a segment the map is checkpointed.
  let opened: ChangeLog | null = null
  const checkpoint = (): Promise<void> => (opened === null ? Promise.resolve() : checkpointMap(ids, opened))
  const log = await ChangeLog.open({ dir: join(dir, 'log'), exportId, checkpoint, ...(gate === undefined ? {} : { gate }), ...(logSizes?.keep === undefined ? {} : { retentionBytes: logSizes.keep }), ...(logSizes?.segment === undefined ? {} : { segmentBytes: logSizes.segment }), ...(logSizes?.io === undefined ? {} : { io: logSizes.io }) })
  opened = log
  try {
    await recoverMap(ids, log)
  } catch (err) {
    await log.close().catch(() => undefined)
    throw err
  }
  const vfs = new ClosingReplica({ backend, map: ids, sink: log, sinkKeepsEdits: true }, async () => {
    await log.close()
    ids.logged(log.lastSeq())
    await ids.close()
  })
  return { map: ids, log, vfs }
}

/** The layer, closing its own map and log after the backend. */
class ClosingReplica extends ReplicatingVfs {
  readonly #after: () => Promise<void>
  constructor(o: ConstructorParameters<typeof ReplicatingVfs>[0], after: () => Promise<void>) {
    super(o)
    this.#after = after
  }

  override async close(): Promise<void> {
    try {
      await super.close()
    } finally {
      await this.#after()
    }
  }
}

export class PrimaryReplication {
  readonly gate: SyncGate
  private readonly o: PrimaryOptions
  private readonly state: NodeState
  private readonly exports = new Map<number, Replicated>()
  private senders: Sender[] = []
  private shippers: RepliesShipper[] = []
  private trimTimer: NodeJS.Timeout | null = null
  private trimming: Promise<void> | null = null
  /** Standbys already told they were trimmed past, per export (said once in the log). */
  private readonly trimmedPast = new Set<string>()

  private constructor(o: PrimaryOptions, state: NodeState) {
    this.o = o
    this.state = state
    this.gate = new SyncGate(o.log)
  }

  /**
   * Opens this node's identity as a primary. A node whose state says it was
   * fenced (another node took over) refuses: it must rejoin as a standby
   * and discard what no standby acknowledged before it serves again.
   */
  static async open(o: PrimaryOptions): Promise<PrimaryReplication> {
    const state = await NodeState.open(o.stateDir, { cluster: o.cluster, node: o.node, role: 'primary', epoch: 1n })
    const me = state.get()
    if (me.role === 'fenced') {
      throw new Error(`${o.stateDir}: this node was fenced at epoch ${me.epoch} (another node took over); it may not serve as primary until it has rejoined as a standby`)
    }
    if (me.role === 'standby') {
      // Serving a standby's copy as a primary without a takeover would make two primaries of one epoch.
      throw new Error(`${o.stateDir}: this node is a standby (epoch ${me.epoch}); it becomes primary through \`tsnfs replication takeover\`, not by serving`)
    }
    return new PrimaryReplication(o, state)
  }

  get epoch(): bigint {
    return this.state.get().epoch
  }

  /**
   * Fencing at start: asks every standby for its epoch before this node serves (start-check.ts).
   * One serving a higher epoch took over while this node was down: the node records itself fenced
   * and this rejects, so not one write is taken. Unreachable standbys count as dead.
   */
  async checkPeersAtStart(): Promise<void> {
    const timeoutMs = Math.min(this.o.timeoutMs ?? 5000, 5000)
    const newest = await newestPeerEpoch(this.o.standbys, this.epoch, this.o.node, timeoutMs, this.o.log)
    if (newest === null) return
    // Not fence(): its hook (--on-fenced, exit 3) is for a running node; this start just fails, saying why.
    await this.state.update({ role: 'fenced' })
    throw new Error(`${this.o.stateDir}: a standby serves epoch ${newest}, above this node's ${this.epoch} (it took over while this node was down); this node is fenced and may not serve as primary until it has rejoined as a standby`)
  }

  /** The server's backend factories, each wrapped: the export is served through the replicating layer. */
  factories(inner: ReadonlyMap<string, BackendFactory>): ReadonlyMap<string, BackendFactory> {
    const out = new Map<string, BackendFactory>()
    for (const [name, make] of inner) {
      out.set(name, async (exp: Export, ctx) => this.wrap(exp, await make(exp, ctx)))
    }
    return out
  }

  /** Wraps one export's opened backend in the replicating layer. */
  private async wrap(exp: Export, backend: Vfs): Promise<Vfs> {
    const parts = await openReplica(this.o.stateDir, exp.id, backend, this.epoch, this.gate.hook(exp.id), this.o.maps?.get(exp.id), {
      ...(this.o.logKeepBytes === undefined ? {} : { keep: this.o.logKeepBytes }),
      ...(this.o.logSegmentBytes === undefined ? {} : { segment: this.o.logSegmentBytes }),
      ...(this.o.logIo === undefined ? {} : { io: this.o.logIo }),
    })
    this.exports.set(exp.id, { path: exp.path, vfs: parts.vfs, log: parts.log })
    return parts.vfs
  }

  /** Starts one sender per standby over every export wrapped so far. */
  start(handleKey: Buffer): void {
    const exports: SenderExport[] = [...this.exports].map(([id, r]) => ({
      id,
      path: r.path,
      mode: this.o.mode,
      ...(this.o.lagBoundMs === undefined ? {} : { lagBoundMs: this.o.lagBoundMs }),
      source: r.log,
      data: r.vfs,
      tree: r.vfs,
      verify: this.o.resyncVerify === true,
    }))
    const mountList = (): Promise<Buffer> => readFile(join(this.o.stateDir, 'rmtab')).catch(() => Buffer.alloc(0))
    for (const s of this.o.standbys) {
      const sender = new Sender({
        host: s.host,
        port: s.port,
        cluster: this.o.cluster,
        node: this.o.node,
        epoch: () => this.epoch,
        hello: async () => ({ handleKey, exportList: this.o.exportListText ?? Buffer.alloc(0), mountList: await mountList() }),
        exports,
        gate: this.gate,
        log: this.o.log.child({ component: 'replication', standby: `${s.host}:${String(s.port)}` }),
        ...(this.o.heartbeatMs === undefined ? {} : { heartbeatMs: this.o.heartbeatMs }),
        ...(this.o.timeoutMs === undefined ? {} : { timeoutMs: this.o.timeoutMs }),
        ...(this.o.appendTimeoutMs === undefined ? {} : { appendTimeoutMs: this.o.appendTimeoutMs }),
        onFenced: (theirs) => {
          this.fence(theirs)
        },
      })
      sender.start()
      this.senders.push(sender)
      const shipper = new RepliesShipper({ host: s.host, port: s.port, epoch: () => this.epoch, log: this.o.log, waited: () => this.gate.waitsFor(sender.peer) })
      // In sync mode a reply waited for rides in the APPEND of its change when it can (REPL_APPEND_DRC).
      shipper.carrier = sender
      sender.home = shipper
      shipper.start()
      this.shippers.push(shipper)
    }
    this.trimTimer = setInterval(() => {
      this.trimming ??= this.trim().finally(() => {
        this.trimming = null
      })
    }, this.o.trimIntervalMs ?? 10_000)
    this.trimTimer.unref()
  }

  /**
   * Trims each export's log up to what every standby has acknowledged (a resync running keeps
   * its P0; a standby that needs a resync keeps nothing), and says once in the log when the
   * retention cap (--log-keep) has cut past a standby's position: it will need a full resync.
   */
  async trim(): Promise<void> {
    for (const [id, r] of this.exports) {
      let floor: bigint | null = null
      for (const s of this.senders) {
        const f = s.logFloor(id)
        if (f !== null && (floor === null || f < floor)) floor = f
      }
      const upTo = (floor ?? r.log.lastSeq() + 1n) - 1n
      try {
        if (upTo > 0n) await r.log.trim(upTo)
      } catch (err) {
        this.o.log.warn({ err, exportId: id }, 'replication: trimming the change log failed')
      }
      for (const s of this.senders) {
        const f = s.logFloor(id)
        const key = `${s.peer}/${String(id)}`
        if (f !== null && f < r.log.firstSeq()) {
          if (!this.trimmedPast.has(key)) this.o.log.warn({ peer: s.peer, exportId: id, position: (f - 1n).toString(), firstSeq: r.log.firstSeq().toString() }, 'replication: the change log was trimmed past this standby\'s position (--log-keep); it will need a full resync when it returns')
          this.trimmedPast.add(key)
        } else {
          this.trimmedPast.delete(key)
        }
      }
    }
  }

  /**
   * The NFS server's duplicate request cache kept a reply: a namespace call's goes to every
   * standby (drc-ship.ts). The returned promise holds the reply back until the local log has the
   * call's changes and, in sync mode, until every standby in the sync set has them and the entry
   * (never past the heartbeat timeout); undefined: nothing to wait for.
   */
  replyCached(key: string, reply: Buffer, held: readonly HeldChange[] = []): Promise<void> | undefined {
    // The changes the call left to its reply (vfs/replica/held-changes.ts) are waited for like the
    // layer would have: in sync mode, no bound but the sync set's (a standby leaving releases them;
    // async mode's standbys are waited for by nobody). The local log's flush in both; it rejects
    // when the log failed, and the reply is then not sent.
    const sync = this.o.mode === 'sync'
    const changes = !sync || held.length === 0 ? undefined : held.length === 1 ? held[0]?.replicated : Promise.all(held.map((h) => h.replicated)).then(() => undefined)
    const here = held.length === 0 ? undefined : Promise.all(held.map((h) => h.durableHere))
    const local = here === undefined ? changes : Promise.all([here, changes]).then(() => undefined)
    if (this.shippers.length === 0 || !shipsReply(DuplicateRequestCache.procOf(key), key, reply)) return local
    // The change a reply describes: its call's last (one export per NFS call). Async mode ships the
    // entry after the reply without naming it, as before replies were held there: a standby holds an
    // entry that names a change until the change arrives, and in async mode that is the whole lag.
    const last = sync ? held.reduce<HeldChange | null>((m, h) => (m === null || h.seq > m.seq ? h : m), null) : null
    const entry = { key, reply, exportId: last?.exportId ?? 0, seq: last?.seq ?? 0n, replicated: changes }
    const waits: Promise<void>[] = []
    for (const [i, s] of this.shippers.entries()) {
      const peer = this.senders[i]?.peer
      if (peer !== undefined && this.gate.waitsFor(peer)) waits.push(s.pushAndWait(entry))
      else s.push(entry)
    }
    const shipped = waits.length === 0 ? undefined : boundedWait(waits.length === 1 ? (waits[0] as Promise<void>) : Promise.all(waits).then(() => undefined), this.o.timeoutMs ?? 5000)
    if (local === undefined || shipped === undefined) return local ?? shipped
    return Promise.all([local, shipped]).then(() => undefined)
  }

  /** Cached replies shipped to standbys (of them, inside their change's APPEND), and dropped (a full queue, or refused). */
  replyCounts(): { shipped: number; dropped: number; inAppends: number } {
    return { shipped: this.shippers.reduce((n, s) => n + s.shipped, 0), dropped: this.shippers.reduce((n, s) => n + s.dropped, 0), inAppends: this.shippers.reduce((n, s) => n + s.inAppends, 0) }
  }

  /** Each sender's heartbeat interval and timeout (ms), as it runs them. */
  senderTimings(): { peer: string; heartbeatMs: number; timeoutMs: number }[] {
    return this.senders.map((s) => ({ peer: s.peer, heartbeatMs: s.heartbeatMs, timeoutMs: s.timeoutMs }))
  }

  /** What REPL_STATUS and the metrics show for this node. */
  view(): NodeStatus {
    const me = this.state.get()
    return {
      node: me.node,
      role: me.role,
      epoch: me.epoch,
      positions: [...this.exports].map(([exportId, r]) => ({ exportId, applied: r.log.lastSeq(), needResync: false })),
      peers: this.senders.map((s) => s.status()),
    }
  }

  async close(): Promise<void> {
    if (this.trimTimer !== null) clearInterval(this.trimTimer)
    this.trimTimer = null
    await this.trimming
    await Promise.all([...this.senders.map((s) => s.stop()), ...this.shippers.map((s) => s.stop())])
    this.senders = []
    this.shippers = []
  }

  /** Another node serves a higher epoch (its HELLO or heartbeat said so): stop taking writes. */
  superseded(theirEpoch: bigint): void {
    this.fence(theirEpoch)
  }

  private fence(theirEpoch: bigint): void {
    if (this.state.get().role === 'fenced') return
    this.o.log.error({ theirEpoch: theirEpoch.toString() }, 'replication: a standby serves a higher epoch; this node is fenced and stops taking writes')
    this.state.update({ role: 'fenced' }).catch((err: unknown) => {
      this.o.log.error({ err }, 'replication: could not record the fencing')
    })
    this.o.onFenced?.(theirEpoch)
  }
}

/** `p`, or at most `ms` of it. */
function boundedWait(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms)
  })
  return Promise.race([p, limit]).finally(() => {
    clearTimeout(timer)
  })
}
