/*
 * Ships a set of exports' change logs to one standby (issue 15 §3):
 * connect, HELLO (the standby's durable positions), then per export
 * APPENDs of batches read from the log after the standby's position,
 * answered in order: full batches (a catch-up) pipelined up to
 * `maxInFlight`, a partial one only when nothing is in flight, so changes
 * logged during a round trip go together in the next (group commit, which
 * is what keeps sync mode's cost per change low). A heartbeat every
 * `heartbeatMs`; a standby that has answered nothing for `timeoutMs` is dead:
 * it leaves the sync set (releasing the replies waiting for it), its position
 * is kept, and the sender reconnects with backoff and catches up from there.
 * A lost connection alone is not death: a standby restarted within the
 * timeout keeps its place and sync replies wait for it.
 *
 * A full resync (resync.ts) runs first when the log cannot bring the
 * standby in step: it is new (position 0, which also copies a tree that
 * existed before replication), it reports need_resync, the log was trimmed
 * past its position (REPL_TRIMMED), or it is ahead of the log (a primary
 * crash lost the log's unsynced tail). The export is out of the sync set
 * until the standby is within a batch of the log's end again. An export
 * without a `tree` (tests of the shipping alone) stops instead (onNeedsResync).
 *
 * In sync mode the cached replies of the calls whose changes a batch holds ride
 * in it (REPL_APPEND_DRC; carried-replies.ts): the shipper hands each to the
 * sender (carry) while its change has not gone, and the sender puts it in the
 * APPEND of that change. Whether the standby takes REPL_APPEND_DRC is asked
 * once per connection (an empty one); an older build answers PROC_UNAVAIL and
 * the replies go beside the APPENDs (REPL_DRC_HELD), as before.
 *
 * What ends shipping: REPL_STALE_EPOCH from the standby (this node was
 * superseded: onFenced, and the sender stops), REPL_NOSPC or REPL_BAD_CHANGE
 * (that export stops, marked failed).
 */
import {
  REPL_VERSION,
  TSNFS_REPL_PROG,
  repl_append_drc_res,
  repl_append_res,
  repl_heartbeat_args,
  repl_heartbeat_res,
  repl_hello_args,
  repl_hello_res,
  repl_stat as STAT,
  repl_statNames,
} from '../../xdr/generated/replication.ts'
import { PeerCallError } from '../callback/errors.ts'
import { StreamCaller } from '../callback/stream.ts'
import { ReadAhead } from './batch.ts'
import { wireAppendArgs, wireAppendDrcArgs } from './append-wire.ts'
import type { WireAppend } from './append-wire.ts'
import { ParkedReplies, toWire } from './carried-replies.ts'
import type { CarriedReply, CarrierHome } from './carried-replies.ts'
import { ResyncRefused, newCounters, runResync } from './resync.ts'
import type { ResyncCounters } from './resync.ts'
import type { Batch } from './batch.ts'
import { ReplicationError } from './log-types.ts'
import type { PeerStatus } from './status.ts'
import { sleep } from './sleep.ts'
import { ASYNC_GATHER_MS, gather } from './gather.ts'
import type { ExportRun, SenderCounters, SenderOptions } from './sender-options.ts'
import { lagMsOf, peerStatus } from './sender-status.ts'
import { MAX_APPEND_BYTES } from './standby-program.ts'

export type { HelloInfo, SenderCounters, SenderExport, SenderOptions } from './sender-options.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const PROC = {
  HELLO: { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_HELLO.proc },
  HEARTBEAT: { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_HEARTBEAT.proc },
  APPEND: { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_APPEND.proc },
  APPEND_DRC: { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_APPEND_DRC.proc },
}

/** An APPEND's reply may take this long (a large batch flushed on a slow disk) while heartbeats are answered. */
const APPEND_TIMEOUT_MS = 30_000

export class Sender {
  readonly peer: string
  readonly counters: SenderCounters = { deaths: 0, connects: 0, appends: 0, changes: 0, bytes: 0, gaps: 0, violations: 0, peakInFlight: 0 }
  private readonly o: SenderOptions
  /** How often this sender heartbeats, and the silence after which the standby is dead (ms). */
  readonly heartbeatMs: number
  readonly timeoutMs: number
  private readonly maxInFlight: number
  private readonly gatherMs: number
  private readonly batchChanges: bigint
  private readonly joinWithin: bigint
  private readonly runs: ExportRun[]
  private readonly stop$ = new AbortController()
  private alive = false
  private lastHeard: number | null = null
  private fenced: bigint | null = null
  private refused: string | null = null
  private conn: StreamCaller | null = null
  private session: AbortController | null = null
  private loop: Promise<void> | null = null
  private watchdog: NodeJS.Timeout | null = null
  /** Whether the standby on this connection takes REPL_APPEND_DRC (null: not known yet). */
  private appendDrc: boolean | null = null
  /** Cached replies waiting for the APPEND of their change, and where they go when they cannot (the shipper). */
  private readonly parked = new ParkedReplies()
  home: CarrierHome | null = null
  /** Per export being pumped, the seq its next APPEND starts at: a reply for an earlier change is too late to ride. */
  private readonly shipNext = new Map<number, bigint>()

  constructor(o: SenderOptions) {
    this.o = o
    this.peer = `${o.host}:${String(o.port)}`
    this.heartbeatMs = o.heartbeatMs ?? 1000
    this.timeoutMs = o.timeoutMs ?? 5000
    this.maxInFlight = Math.max(1, o.maxInFlight ?? 4)
    const caps = { changes: Math.max(1, o.batchChanges ?? 1024), bytes: Math.min(MAX_APPEND_BYTES, Math.max(1, o.batchBytes ?? MAX_APPEND_BYTES)) }
    this.joinWithin = BigInt(caps.changes)
    this.batchChanges = BigInt(caps.changes)
    this.gatherMs = Math.max(0, o.asyncGatherMs ?? ASYNC_GATHER_MS)
    this.runs = o.exports.map((ex) => {
      o.gate.configure(ex.id, { mode: ex.mode, ...(ex.lagBoundMs === undefined ? {} : { lagBoundMs: ex.lagBoundMs }) })
      return { ex, ahead: new ReadAhead(ex.source, ex.data, caps), acked: 0n, stopped: null, wantResync: false, resyncP0: null, resync: null, resyncs: 0, inFlightBytes: 0, behindSince: null, overBound: false }
    })
  }

  start(): void {
    if (this.loop !== null) return
    this.watchdog = setInterval(() => {
      this.checkAlive()
    }, Math.max(10, Math.min(this.heartbeatMs, this.timeoutMs) / 2))
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.stop$.abort()
    this.session?.abort()
    this.conn?.close()
    if (this.watchdog !== null) clearInterval(this.watchdog)
    this.watchdog = null
    await this.loop
    this.releaseParked()
    this.o.gate.leave(this.peer, 'sender stopped')
  }

  status(now = performance.now()): PeerStatus {
    return peerStatus({ peer: this.peer, alive: this.alive, lastHeard: this.lastHeard, fenced: this.fenced, refused: this.refused, deaths: this.counters.deaths, joinWithin: this.joinWithin, runs: this.runs }, now)
  }

  /**
   * The first change of the export this standby may still need from the log (trimming keeps
   * it): its position + 1, or P0 + 1 while a resync runs; null when it needs none (a resync
   * will start from the log's end, or shipping stopped).
   */
  logFloor(exportId: number): bigint | null {
    const r = this.runs.find((x) => x.ex.id === exportId)
    if (r === undefined || r.stopped !== null) return null
    if (r.resyncP0 !== null) return r.resyncP0 + 1n
    if (r.wantResync) return null
    return r.acked + 1n
  }

  /** The export's resync: the running or last one's counters, how many ran, whether one is running or wanted. */
  resyncStatus(exportId: number): { counters: ResyncCounters | null; resyncs: number; running: boolean; wanted: boolean } | null {
    const r = this.runs.find((x) => x.ex.id === exportId)
    return r === undefined ? null : { counters: r.resync, resyncs: r.resyncs, running: r.resyncP0 !== null, wanted: r.wantResync }
  }

  /** Milliseconds the export has been behind (0: caught up). */
  lagMs(exportId: number, now = performance.now()): number {
    return lagMsOf(this.runs.find((x) => x.ex.id === exportId), now)
  }


  /**
   * Takes a cached reply to send inside the APPEND of its change (REPL_APPEND_DRC): true when that
   * change has not gone yet on a live session to a standby that takes them; false: the caller
   * sends it itself.
   */
  carry(e: CarriedReply): boolean {
    if (this.appendDrc !== true || this.home === null || this.session === null || this.session.signal.aborted) return false
    const next = this.shipNext.get(e.exportId)
    const r = this.runs.find((x) => x.ex.id === e.exportId)
    if (next === undefined || r === undefined || r.stopped !== null || r.wantResync || r.resyncP0 !== null || e.seq < next) return false
    this.parked.park(e)
    return true
  }

  private releaseParked(exportId?: number): void {
    if (this.home !== null) this.parked.release(this.home, exportId)
  }

  private heard(): void {
    this.lastHeard = performance.now()
  }

  /** The heartbeat timeout: a standby silent for timeoutMs is dead until it answers a HELLO again. */
  private checkAlive(): void {
    if (!this.alive || this.lastHeard === null) return
    if (performance.now() - this.lastHeard <= this.timeoutMs) return
    this.alive = false
    this.counters.deaths++
    this.o.log.warn({ peer: this.peer, timeoutMs: this.timeoutMs }, 'replication: standby not answering; dropped from the sync set')
    this.o.gate.leave(this.peer, 'heartbeat timeout')
    this.session?.abort()
    this.conn?.close()
  }

  private fence(epoch: bigint): void {
    if (this.fenced !== null) return
    this.fenced = epoch
    this.o.log.error({ peer: this.peer, epoch: epoch.toString(), ours: this.o.epoch().toString() }, 'replication: the standby has a newer epoch; this node is superseded (fenced)')
    this.stop$.abort()
    this.session?.abort()
    this.o.gate.leave(this.peer, 'fenced')
    this.o.onFenced?.(epoch)
  }

  private async run(): Promise<void> {
    const min = this.o.reconnectMinMs ?? 100
    const max = this.o.reconnectMaxMs ?? Math.min(5000, this.timeoutMs)
    let backoff = min
    while (!this.stop$.signal.aborted) {
      let ok = false
      try {
        const c = await StreamCaller.open({ host: this.o.host, port: this.o.port }, { timeoutMs: this.timeoutMs, signal: this.stop$.signal })
        this.conn = c
        this.counters.connects++
        ok = await this.converse(c)
      } catch (err) {
        this.o.log.debug({ err, peer: this.peer }, 'replication: connection to the standby failed')
      } finally {
        this.conn?.close()
        this.conn = null
      }
      backoff = ok ? min : Math.min(max, backoff * 2)
      await sleep(backoff, this.stop$.signal)
    }
  }

  /** One connection: HELLO, then heartbeats and the export pipelines until the connection or the session ends. True if the HELLO was accepted. */
  private async converse(c: StreamCaller): Promise<boolean> {
    const info = await this.o.hello()
    const res: repl_hello_res = await c.call(PROC.HELLO, repl_hello_args, {
      version: REPL_VERSION,
      cluster: Buffer.from(this.o.cluster),
      node: Buffer.from(this.o.node),
      epoch: this.o.epoch(),
      handle_key: info.handleKey,
      exports: this.runs.map((r) => ({ export_id: r.ex.id, path: Buffer.from(r.ex.path), sync: r.ex.mode === 'sync' })),
      export_list: info.exportList,
      mount_list: info.mountList,
    }, repl_hello_res)
    this.heard()
    if (res.status === STAT.REPL_STALE_EPOCH) {
      this.fence(res.epoch)
      return false
    }
    if (res.status !== STAT.REPL_OK) {
      const why = repl_statNames[res.status] ?? String(res.status)
      if (this.refused !== why) this.o.log.error({ peer: this.peer, status: why, ...(res.status === STAT.REPL_BAD_VERSION ? { supported: res.supported } : {}) }, 'replication: the standby refused our HELLO')
      this.refused = why
      // It answers, but not as our standby: no sync reply may wait for it.
      this.alive = false
      this.o.gate.leave(this.peer, `refused: ${why}`)
      return false
    }
    this.refused = null
    this.appendDrc = await this.probeAppendDrc(c)
    if (!this.alive) this.o.log.info({ peer: this.peer }, 'replication: standby answering')
    this.alive = true
    for (const r of this.runs) {
      const p = res.positions.find((x) => x.export_id === r.ex.id)
      r.ahead.reset()
      // Each HELLO decides again: a standby restarted with room (it was full), or one that lists an
      // export it did not, takes the export's changes from its position (deploy/replication.md).
      r.stopped = null
      if (p === undefined) {
        this.stopExport(r, 'refused: NO_EXPORT')
        continue
      }
      // A position past the log is no acknowledgement (the primary lost its log's tail in a crash,
      // or the standby is not telling the truth): nothing is taken as held on its word.
      const pastLog = p.applied > r.ex.source.lastSeq()
      r.acked = pastLog ? 0n : p.applied
      // What it holds counts at once: an APPEND it applied whose reply was lost with the last
      // connection may be the last change for a while, and its writers wait for this.
      if (!pastLog && !p.need_resync) this.o.gate.ack(this.peer, r.ex.id, r.acked)
      if (r.ex.tree !== undefined) {
        const why = p.need_resync ? 'the standby diverged from the log (or a resync was cut short)'
          : p.applied === 0n ? 'a new standby'
            : p.applied < r.ex.source.firstSeq() - 1n ? 'the change log was trimmed past the standby\'s position'
              : pastLog ? 'the standby is ahead of the change log'
                : null
        if (why !== null) {
          if (!r.wantResync) this.o.log.warn({ peer: this.peer, exportId: r.ex.id, why }, 'replication: export needs a full resync; starting one')
          r.wantResync = true
        }
      } else if (p.need_resync) this.needsResync(r, 'the standby diverged from the log')
      else if (pastLog) this.needsResync(r, 'the standby is ahead of the change log')
    }
    const session = new AbortController()
    this.session = session
    const beat = setInterval(() => {
      void this.heartbeat(c, session)
    }, this.heartbeatMs)
    try {
      await Promise.all(this.runs.map((r) => this.pump(c, r, session)))
      // Every export stopped (or the session ended): keep the connection for heartbeats and status until it ends.
      if (!session.signal.aborted) {
        await new Promise((resolve) => {
          session.signal.addEventListener('abort', resolve, { once: true })
        })
      }
    } finally {
      clearInterval(beat)
      session.abort()
      this.shipNext.clear()
      this.releaseParked()
      this.appendDrc = null
    }
    return true
  }

  /**
   * Whether the standby takes REPL_APPEND_DRC: asked with an empty one (no change, no reply:
   * answered as an empty APPEND). Only in sync mode, where replies wait for their entries.
   */
  private async probeAppendDrc(c: StreamCaller): Promise<boolean> {
    const r = this.runs.find((x) => x.ex.mode === 'sync')
    if (r === undefined) return false
    try {
      await c.call(PROC.APPEND_DRC, wireAppendDrcArgs, { append: { epoch: this.o.epoch(), export_id: r.ex.id, first: r.acked + 1n, changes: [] }, entries: [] }, repl_append_drc_res)
      return true
    } catch (err) {
      if (!(err instanceof PeerCallError) || err.status !== 'PROC_UNAVAIL') throw err
      if (this.appendDrc !== false) this.o.log.info({ peer: this.peer }, 'replication: standby has no REPL_APPEND_DRC (older build); cached replies go beside the APPENDs')
      return false
    }
  }

  /**
   * One APPEND of `a`; with `carried` replies, REPL_APPEND_DRC, and the shipper told how they fared
   * (stored, or to send again by REPL_DRC_HELD; a failed call sends them again too).
   */
  private callAppend(c: StreamCaller, a: WireAppend, carried: readonly CarriedReply[]): Promise<repl_append_res> {
    // A slow flush is not a dead standby (the heartbeats say that): allow an APPEND more time than a heartbeat.
    const opts = { timeoutMs: Math.max(this.o.appendTimeoutMs ?? APPEND_TIMEOUT_MS, this.timeoutMs) }
    const home = this.home
    if (carried.length === 0 || home === null) return c.call(PROC.APPEND, wireAppendArgs, a, repl_append_res, opts)
    return c.call(PROC.APPEND_DRC, wireAppendDrcArgs, { append: a, entries: carried.map(toWire) }, repl_append_drc_res, opts).then((res) => {
      home.carried(carried, res.drc === STAT.REPL_OK)
      return res.append
    }, (err: unknown) => {
      home.returned(carried)
      throw err
    })
  }

  private async heartbeat(c: StreamCaller, session: AbortController): Promise<void> {
    try {
      const res = await c.call(PROC.HEARTBEAT, repl_heartbeat_args, { epoch: this.o.epoch(), node: Buffer.from(this.o.node) }, repl_heartbeat_res)
      this.heard()
      if (res.status === STAT.REPL_STALE_EPOCH) this.fence(res.epoch)
    } catch {
      // The connection broke: end the session (the watchdog decides about death).
      session.abort()
    }
  }

  private stopExport(r: ExportRun, why: string): void {
    r.stopped = why
    this.releaseParked(r.ex.id)
    this.o.gate.leave(this.peer, why, r.ex.id)
  }

  private needsResync(r: ExportRun, why: string): void {
    this.o.log.error({ peer: this.peer, exportId: r.ex.id, why }, 'replication: export needs a full resync')
    this.stopExport(r, 'needs resync')
    this.o.onNeedsResync?.(r.ex.id, why)
  }

  /** Marks the export caught up (joins the sync set) when it is within one batch of the log's end. */
  private progress(r: ExportRun): void {
    const last = r.ex.source.lastSeq()
    if (r.acked >= last) r.behindSince = null
    if (last - r.acked <= this.joinWithin && this.alive) this.o.gate.join(this.peer, r.ex.id, r.acked)
    const bound = r.ex.lagBoundMs
    if (r.ex.mode === 'async' && bound !== undefined) {
      const over = this.lagMs(r.ex.id) > bound
      if (over !== r.overBound) {
        r.overBound = over
        if (over) this.o.log.warn({ peer: this.peer, exportId: r.ex.id, boundMs: bound }, 'replication: async lag over its bound')
        else this.o.log.info({ peer: this.peer, exportId: r.ex.id }, 'replication: async lag back within its bound')
      }
    }
  }

  /** A full resync of the export over this connection; false when it did not finish (the session is ended or the sender fenced). */
  private async resync(c: StreamCaller, r: ExportRun, session: AbortController): Promise<boolean> {
    const tree = r.ex.tree
    if (tree === undefined) return false
    // Not in the sync set until it has caught up after the resync.
    this.o.gate.leave(this.peer, 'full resync', r.ex.id)
    this.shipNext.delete(r.ex.id)
    this.releaseParked(r.ex.id)
    const counters = newCounters()
    r.resync = counters
    r.resyncs++
    try {
      const p0 = await runResync({
        conn: c,
        epoch: this.o.epoch(),
        exportId: r.ex.id,
        tree,
        source: r.ex.source,
        verify: r.ex.verify === true,
        log: this.o.log,
        signal: session.signal,
        counters,
        onBegin: (seq) => {
          r.resyncP0 = seq
        },
      })
      this.heard()
      r.acked = p0
      r.wantResync = false
      return true
    } catch (err) {
      if (err instanceof ResyncRefused && err.epoch !== null) {
        this.fence(err.epoch)
        return false
      }
      this.o.log.error({ err, peer: this.peer, exportId: r.ex.id }, 'replication: full resync interrupted; it starts over on the next connection')
      // A pause, so a standby that keeps refusing is not asked in a loop.
      await sleep(Math.max(this.heartbeatMs, 1000), session.signal)
      session.abort()
      this.conn?.close()
      return false
    } finally {
      r.resyncP0 = null
    }
  }

  private async pump(c: StreamCaller, r: ExportRun, session: AbortController): Promise<void> {
    if (r.wantResync && !(await this.resync(c, r, session))) return
    const signal = session.signal
    const inflight: { batch: Batch; reply: Promise<repl_append_res> }[] = []
    let next = r.acked + 1n
    // Where the next APPEND starts, for carry(): set with `next` wherever it changes.
    const from = (seq: bigint): bigint => {
      this.shipNext.set(r.ex.id, seq)
      return seq
    }
    from(next)
    const drain = async (): Promise<void> => {
      await Promise.allSettled(inflight.map((f) => f.reply))
      inflight.length = 0
      r.inFlightBytes = 0
      r.ahead.reset()
    }
    try {
      while (!signal.aborted && r.stopped === null) {
        while (inflight.length < this.maxInFlight && next <= r.ex.source.lastSeq()) {
          r.behindSince ??= performance.now()
          if (!(await gather(r, { inFlight: inflight.length, next, gatherMs: this.gatherMs, batchChanges: this.batchChanges, signal }))) break
          // Group commit: a partial batch goes only when nothing is in flight; while a reply is
          // awaited, new changes gather into the next batch. Full batches (a catch-up) pipeline.
          const batch = await r.ahead.take(next, inflight.length === 0)
          if (batch.changes.length === 0) break
          const home = this.home
          const last = next + BigInt(batch.changes.length) - 1n
          const carried = this.appendDrc === true && home !== null ? this.parked.claim(r.ex.id, next, last, home) : []
          const reply = this.callAppend(c, { epoch: this.o.epoch(), export_id: r.ex.id, first: next, changes: batch.changes }, carried)
          reply.catch(() => undefined)
          inflight.push({ batch, reply })
          if (inflight.length > this.counters.peakInFlight) this.counters.peakInFlight = inflight.length
          r.inFlightBytes += batch.bytes
          this.counters.appends++
          next = from(last + 1n)
        }
        const head = inflight[0]
        if (head === undefined) {
          this.progress(r)
          await r.ex.source.waitAfter(next - 1n, signal).catch(() => undefined)
          continue
        }
        const res = await head.reply
        inflight.shift()
        r.inFlightBytes -= head.batch.bytes
        this.heard()
        // Replies come in order, so none can speak of a change after the last one sent. One that does
        // is not an acknowledgement (a broken or hostile standby, a damaged link): releasing sync
        // replies on its word would answer clients for changes no standby holds. End the session;
        // the next HELLO says where the standby really is.
        const claimed = res.status === STAT.REPL_OK ? res.durable : res.status === STAT.REPL_GAP ? res.applied : null
        if (claimed !== null && claimed >= next) {
          this.counters.violations++
          this.o.log.error({ peer: this.peer, exportId: r.ex.id, sent: (next - 1n).toString(), claimed: claimed.toString(), status: repl_statNames[res.status] }, 'replication: the standby answered for changes it was never sent; ending the session')
          session.abort()
          this.conn?.close()
          return
        }
        // A GAP, or an OK that holds less than the batch: the standby lost what it had applied while
        // the batch was on its way (in service only across its restart, whose HELLO says so; CI's
        // fault test rewinds a running one). After such an OK nothing later would tell: `next` is
        // past the batch and the writers waiting for it append nothing more. Resend from its position.
        const batchEnd = head.batch.first + BigInt(head.batch.changes.length) - 1n
        const lostAt = res.status === STAT.REPL_GAP ? res.applied : res.status === STAT.REPL_OK && res.durable < batchEnd ? res.durable : null
        if (lostAt !== null) {
          this.counters.gaps++
          this.o.log.warn({ peer: this.peer, exportId: r.ex.id, sent: head.batch.first.toString(), applied: lostAt.toString() }, 'replication: standby reports a gap; resending from its position')
          await drain()
          r.acked = lostAt
          next = from(r.acked + 1n)
          continue
        }
        switch (res.status) {
          case STAT.REPL_OK:
            if (res.durable > r.acked) r.acked = res.durable
            this.counters.changes += head.batch.changes.length
            this.counters.bytes += head.batch.bytes
            this.o.gate.ack(this.peer, r.ex.id, r.acked)
            this.progress(r)
            break
          case STAT.REPL_STALE_EPOCH:
            this.fence(res.epoch)
            return
          case STAT.REPL_NOSPC:
            this.stopExport(r, 'failed: NOSPC')
            this.o.log.error({ peer: this.peer, exportId: r.ex.id }, 'replication: standby out of space; export no longer shipped to it')
            return
          case STAT.REPL_NEED_RESYNC:
            if (r.ex.tree !== undefined) {
              this.o.log.warn({ peer: this.peer, exportId: r.ex.id }, 'replication: the standby could not apply a change; starting a full resync')
              await drain()
              r.wantResync = true
              await this.pump(c, r, session)
              return
            }
            this.needsResync(r, 'the standby could not apply a change')
            return
          case STAT.REPL_BUSY:
          case STAT.REPL_IO:
            // Transient on the standby: start again from its position after a pause.
            await drain()
            next = from(r.acked + 1n)
            await sleep(this.heartbeatMs, signal)
            break
          case STAT.REPL_NOT_STANDBY:
            // It took over: the next HELLO or heartbeat tells us our epoch is stale.
            session.abort()
            return
          default:
            this.stopExport(r, `failed: ${repl_statNames[res.status] ?? String(res.status)}`)
            this.o.log.error({ peer: this.peer, exportId: r.ex.id, status: repl_statNames[res.status] }, 'replication: standby refused an APPEND')
            return
        }
      }
    } catch (err) {
      if (err instanceof ReplicationError && err.code === 'REPL_TRIMMED') {
        if (r.ex.tree !== undefined && !signal.aborted) {
          this.o.log.warn({ peer: this.peer, exportId: r.ex.id }, 'replication: the change log was trimmed past the standby\'s position; starting a full resync')
          await Promise.allSettled(inflight.map((f) => f.reply))
          r.ahead.reset()
          r.wantResync = true
          await this.pump(c, r, session)
          return
        }
        this.needsResync(r, 'the change log was trimmed past the standby\'s position')
        return
      }
      // A broken connection or call timeout: end the session; the next one starts from the standby's position.
      this.o.log.debug({ err, peer: this.peer, exportId: r.ex.id }, 'replication: shipping interrupted')
      session.abort()
      this.conn?.close()
    } finally {
      r.inFlightBytes = 0
    }
  }
}
