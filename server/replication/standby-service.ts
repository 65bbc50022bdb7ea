/*
 * The standby's side of the replication protocol (xdr/spec/replication.x),
 * apart from RPC (standby-program.ts binds it). Statuses, in the order they
 * are checked:
 *
 *   HELLO     version != REPL_VERSION          -> REPL_BAD_VERSION (our range)
 *             another cluster                  -> REPL_BUSY (this node is taken, by its own cluster)
 *             epoch < ours                     -> REPL_STALE_EPOCH (ours): a former primary, fenced
 *             we are not a standby             -> REPL_NOT_STANDBY (a primary seeing a higher epoch
 *                                                 becomes 'fenced' first, durably)
 *             a takeover under way             -> REPL_BUSY
 *             another node attached, same epoch -> REPL_BUSY (one primary at a time)
 *             an export we do not have (id and path) -> REPL_NO_EXPORT (nothing attached: a
 *                                                 standby serves all it is sent or refuses)
 *             else: the handle key, export list and mount list stored durably, a higher epoch
 *             adopted durably (after every export holding anything was marked for a full
 *             resync: its positions count the old primary's log), the caller attached -> REPL_OK
 *             with each export's position.
 *   HEARTBEAT epoch < ours -> REPL_STALE_EPOCH; else REPL_OK (role, epoch).
 *   APPEND    epoch < ours -> REPL_STALE_EPOCH; not a standby -> REPL_NOT_STANDBY; not from the
 *             attached primary's connection (or a takeover under way) -> REPL_BUSY; unknown
 *             export -> REPL_NO_EXPORT; the export failed or needs a resync -> that status again;
 *             a change that breaks the wire rules -> REPL_BAD_CHANGE (nothing applied); more
 *             than `maxQueued` APPENDs waiting for the export -> REPL_BUSY; then, in turn,
 *             first > position + 1 -> REPL_GAP (position); the backend full -> REPL_NOSPC (the export
 *             is marked failed); a change the tree cannot take (ENOENT, ESTALE, EEXIST, ...),
 *             in its apply or in the flush after -> REPL_NEED_RESYNC (marked durably); another
 *             backend error -> REPL_IO.
 *             Changes at or below the position are skipped (a resend after a lost reply).
 *   APPEND_DRC the APPEND as above; its cached replies written meanwhile as REPL_DRC_HELD's
 *             (drc-held.ts): `drc` REPL_OK once they are on disk and their changes durable,
 *             REPL_BUSY when the APPEND was not REPL_OK (the entries are then not usable).
 *   TAKEOVER  not a standby -> REPL_NOT_STANDBY (a primary answers OK with its epoch: a
 *             retransmission); a primary attached and heard within `attachTimeoutMs` and no
 *             force -> REPL_BUSY; else the running APPENDs finish, the epoch rises and the role
 *             becomes primary durably, onTakeover runs -> REPL_OK (the new epoch); REPL_IO if
 *             onTakeover fails (the node is primary all the same).
 *   RESYNC_*  as APPEND up to the export (standby-resync.ts); then no resync target ->
 *             REPL_NEED_RESYNC; the export full -> REPL_NOSPC; the queue full -> REPL_BUSY.
 */
import { join } from 'node:path'
import type { Change } from '../../vfs/replica/change.ts'
import { isErrnoError } from '../../vfs/errors.ts'
import type {
  repl_append_args,
  repl_append_drc_args,
  repl_append_drc_res,
  repl_append_res,
  repl_heartbeat_args,
  repl_heartbeat_res,
  repl_hello_args,
  repl_rs_begin_args,
  repl_rs_data_args,
  repl_rs_dir_args,
  repl_rs_dir_res,
  repl_rs_end_args,
  repl_rs_res,
  repl_rs_sums_args,
  repl_rs_sums_res,
  repl_hello_res,
  repl_failures_res,
  repl_status_res,
  repl_takeover_args,
  repl_takeover_res,
} from '../../xdr/generated/replication.ts'
import { REPL_VERSION, repl_stat as STAT } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import { readIfExists } from '../state.ts'
import { writeAtomic } from './node-state.ts'
import type { NodeState } from './node-state.ts'
import { failuresToWire, roleToWire, statusToWire } from './status.ts'
import type { ExportFailure, ExportPosition, NodeStatus, PeerStatus } from './status.ts'
import { ownChange } from './own-change.ts'
import { resyncMarkName, writeResyncMark } from './rejoin.ts'
import { DurableWaits, ReplyIntake } from './drc-held.ts'
import { ReplyStore } from './drc-store.ts'
import { changeFromRepl } from './change-codec.ts'
import { FULL, StandbyResync } from './standby-resync.ts'
import type { GateFail, StandbyGate } from './standby-resync.ts'
import type { Attached, CallOrigin, ExportState, FailStat, ResyncProgress, StandbyOptions } from './standby-types.ts'

export type { CallOrigin, ResyncProgress, StandbyExport, StandbyOptions } from './standby-types.ts'

/** Backend errors that mean the standby's tree does not match the change: only a full resync repairs it. */
const DIVERGED = new Set(['ENOENT', 'ESTALE', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EINVAL', 'EXDEV', 'EMLINK', 'ELOOP'])

const PRIMARY_DIR = 'primary'
/** The primary's cached replies (drc-store.ts), in STATE-DIR/replication/. */
export const REPLIES_FILE = 'replies.drc'

export class StandbyService implements StandbyGate {
  private readonly state: NodeState
  readonly log: Logger
  private readonly exports = new Map<number, ExportState>()
  private readonly attachTimeoutMs: number
  private readonly maxQueued: number
  private readonly now: () => number
  private readonly onTakeover: ((epoch: bigint) => void | Promise<void>) | undefined
  private readonly extraPeers: (() => PeerStatus[]) | undefined
  private attached: Attached | null = null
  private readonly openedAt: number
  private takingOver = false
  /** The primary's cached replies (REPL_DRC), for this node's cache at a takeover (drc-ship.ts); kept in REPLIES_FILE. */
  replies = new ReplyStore()
  /** Each export's durable position, which REPL_DRC_HELD's entries wait for (drc-held.ts). */
  readonly durableWaits: DurableWaits
  /** REPL_DRC and REPL_DRC_HELD (drc-held.ts). */
  readonly intake: ReplyIntake
  /** What the last HELLO stored, so an unchanged one writes nothing. */
  private stored = new Map<string, Buffer>()
  private readonly resync: StandbyResync

  private constructor(opts: StandbyOptions) {
    this.state = opts.state
    this.log = opts.log
    this.attachTimeoutMs = opts.attachTimeoutMs ?? 5000
    this.maxQueued = opts.maxQueued ?? 16
    this.now = opts.now ?? (() => performance.now())
    this.onTakeover = opts.onTakeover
    this.extraPeers = opts.peers
    this.openedAt = this.now()
    for (const ex of opts.exports) {
      if (this.exports.has(ex.id)) throw new TypeError(`export id ${ex.id} given twice`)
      this.exports.set(ex.id, { ex, tail: Promise.resolve(), queued: 0, failed: null, full: null, resyncing: null, progress: { dirs: 0, files: 0, bytes: 0 } })
    }
    this.resync = new StandbyResync(this, this.exports)
    this.durableWaits = new DurableWaits((id) => this.exports.get(id)?.ex.target.position() ?? 0n)
    this.intake = new ReplyIntake({ store: () => this.replies, waits: this.durableWaits, refusal: (epoch) => this.drcRefusal(epoch), log: this.log, timeoutMs: this.attachTimeoutMs })
  }

  get stateDir(): string {
    return this.state.dir
  }

  /** A service over `opts.exports`; exports marked for resync in the state directory stay marked. */
  static async open(opts: StandbyOptions): Promise<StandbyService> {
    const s = new StandbyService(opts)
    for (const e of s.exports.values()) {
      if ((await readIfExists(join(s.state.dir, resyncMarkName(e.ex.id)))) === null) continue
      e.failed = STAT.REPL_NEED_RESYNC
      // Its tree answers to no log position until the full resync ends (a new primary's log, or one
      // this tree fell out of): no cached reply waiting for a change counts as durable here meanwhile.
      s.durableWaits.reached(e.ex.id, 0n)
    }
    // An entry is usable once the export's durable position reaches its seq (drc-store.ts).
    s.replies = await ReplyStore.open(join(s.state.dir, REPLIES_FILE), s.log, { durable: (id) => s.durableWaits.position(id) })
    for (const name of ['handle.key', 'export-list', 'mount-list']) {
      const b = await readIfExists(join(s.state.dir, PRIMARY_DIR, name))
      if (b !== null) s.stored.set(name, b)
    }
    return s
  }

  /** The primary's handle key, export list and mount list as the last HELLO sent them (null before any). */
  primaryInfo(): { handleKey: Buffer; exportList: Buffer; mountList: Buffer } | null {
    const handleKey = this.stored.get('handle.key')
    if (handleKey === undefined) return null
    return { handleKey, exportList: this.stored.get('export-list') ?? Buffer.alloc(0), mountList: this.stored.get('mount-list') ?? Buffer.alloc(0) }
  }

  /**
   * How long the primary has been silent, ms: since its last call, or since this service opened
   * when it has not called since (a standby restarted while the primary was down); null when no
   * primary ever said HELLO (there is nothing to take over). What --auto-takeover watches.
   */
  primarySilenceMs(): number | null {
    if (this.primaryInfo() === null) return null
    const cur = this.attached
    return this.now() - (cur === null ? this.openedAt : cur.lastSeen)
  }

  /** Whether export `id` failed (NOSPC, IO) or needs a resync, and how. */
  exportFailure(id: number): FailStat | null {
    return this.exports.get(id)?.failed ?? null
  }

  async hello(a: repl_hello_args, from: CallOrigin): Promise<repl_hello_res> {
    if (a.version !== REPL_VERSION) return { status: STAT.REPL_BAD_VERSION, supported: { low: REPL_VERSION, high: REPL_VERSION } }
    const me = this.state.get()
    const node = a.node.toString('utf8')
    if (a.cluster.toString('utf8') !== me.cluster) {
      this.log.warn({ cluster: a.cluster.toString('utf8'), node }, 'replication: HELLO from another cluster refused')
      return { status: STAT.REPL_BUSY }
    }
    if (a.epoch < me.epoch) return { status: STAT.REPL_STALE_EPOCH, epoch: me.epoch }
    if (me.role !== 'standby') {
      if (me.role === 'primary' && a.epoch > me.epoch) {
        // Another node took over after us: we must not serve writes until we rejoin as a standby.
        this.log.warn({ node, epoch: a.epoch.toString(), ours: me.epoch.toString() }, 'replication: a primary of a higher epoch exists; this node is fenced')
        await this.state.update({ role: 'fenced', epoch: a.epoch })
      }
      return { status: STAT.REPL_NOT_STANDBY }
    }
    if (this.takingOver) return { status: STAT.REPL_BUSY }
    const cur = this.attached
    if (cur !== null && cur.node !== node && a.epoch === cur.epoch && this.isLive(cur)) {
      this.log.warn({ node, attached: cur.node }, 'replication: HELLO refused, another primary of the same epoch is attached')
      return { status: STAT.REPL_BUSY }
    }
    for (const e of a.exports) {
      const have = this.exports.get(e.export_id)
      if (have?.ex.path !== e.path.toString('utf8')) {
        this.log.warn({ exportId: e.export_id, path: e.path.toString('utf8') }, 'replication: HELLO names an export this standby does not have')
        return { status: STAT.REPL_NO_EXPORT }
      }
    }
    if (a.epoch > me.epoch) await this.newEpoch(a.epoch, node)
    await this.store('handle.key', a.handle_key)
    await this.store('export-list', a.export_list)
    await this.store('mount-list', a.mount_list)
    if (a.epoch > me.epoch) await this.state.update({ epoch: a.epoch })
    this.attached = { node, epoch: a.epoch, address: from.address, conn: from.conn, lastSeen: this.now() }
    this.log.info({ node, epoch: a.epoch.toString(), address: from.address }, 'replication: primary attached')
    return { status: STAT.REPL_OK, positions: this.positions().map((p) => ({ export_id: p.exportId, applied: p.applied, need_resync: p.needResync })) }
  }

  heartbeat(a: repl_heartbeat_args): repl_heartbeat_res {
    const me = this.state.get()
    if (a.epoch < me.epoch) return { status: STAT.REPL_STALE_EPOCH, epoch: me.epoch }
    const cur = this.attached
    if (cur?.node === a.node.toString('utf8') && cur.epoch === a.epoch) cur.lastSeen = this.now()
    return { status: STAT.REPL_OK, ok: { role: roleToWire(me.role), epoch: me.epoch } }
  }

  append(a: repl_append_args, from: CallOrigin): Promise<repl_append_res> | repl_append_res {
    const e = this.admit(a, from)
    if ('status' in e) return e
    if (e.failed !== null) return { status: e.failed }
    // Converted before queueing: a malformed batch is refused whole, nothing applied.
    let changes: Change[]
    try {
      changes = a.changes.map((c) => ownChange(changeFromRepl(c)))
    } catch (err) {
      this.log.warn({ err, exportId: a.export_id }, 'replication: APPEND refused, a change breaks the wire rules')
      return { status: STAT.REPL_BAD_CHANGE }
    }
    return this.queue(e, from, () => this.applyBatch(e, a.first, changes))
  }

  /** REPL_APPEND_DRC: the APPEND, and beside its apply and flush the cached replies of its changes (drc-held.ts). */
  appendDrc(a: repl_append_drc_args, from: CallOrigin): Promise<repl_append_drc_res> | repl_append_drc_res {
    const appended = this.append(a.append, from)
    // Refused before anything was queued: nothing of it is durable, so none of its replies is stored.
    if (!(appended instanceof Promise)) return { append: appended, drc: STAT.REPL_BUSY }
    return Promise.all([appended, this.intake.withAppend(a.append.epoch, a.entries, appended)]).then(([append, drc]) => ({ append, drc }))
  }

  /** StandbyGate: the checks APPEND and every RESYNC_* call share, in this order. */
  admit(a: { epoch: bigint; export_id: number }, from: CallOrigin): ExportState | GateFail {
    const me = this.state.get()
    if (a.epoch < me.epoch) return { status: STAT.REPL_STALE_EPOCH, epoch: me.epoch }
    if (me.role !== 'standby') return { status: STAT.REPL_NOT_STANDBY }
    const cur = this.attached
    if (this.takingOver || cur === null || cur.conn !== from.conn || cur.epoch !== a.epoch) return { status: STAT.REPL_BUSY }
    cur.lastSeen = this.now()
    return this.exports.get(a.export_id) ?? { status: STAT.REPL_NO_EXPORT }
  }

  /** StandbyGate: fn in the export's queue (one call applies at a time), the primary's lastSeen kept fresh. */
  queue<R>(e: ExportState, from: CallOrigin, fn: () => Promise<R>): Promise<R> | { status: typeof STAT.REPL_BUSY } {
    if (e.queued >= this.maxQueued) return { status: STAT.REPL_BUSY }
    e.queued++
    const run = e.tail.then(fn)
    e.tail = run.then(
      () => undefined,
      () => undefined,
    )
    return run.finally(() => {
      e.queued--
      const now = this.attached
      if (now !== null && now.conn === from.conn) now.lastSeen = this.now()
    })
  }

  /** Why a REPL_DRC(_HELD) of `epoch` is refused now, or null. */
  private drcRefusal(epoch: bigint): repl_rs_res | null {
    const me = this.state.get()
    if (epoch < me.epoch) return { status: STAT.REPL_STALE_EPOCH, epoch: me.epoch }
    if (me.role !== 'standby') return { status: STAT.REPL_NOT_STANDBY }
    if (this.takingOver || this.attached?.epoch !== epoch) return { status: STAT.REPL_BUSY }
    return null
  }

  /** Closes the cached replies' file. */
  async close(): Promise<void> {
    await this.replies.close()
  }

  resyncBegin(a: repl_rs_begin_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    return this.resync.begin(a, from)
  }

  resyncDir(a: repl_rs_dir_args, from: CallOrigin): Promise<repl_rs_dir_res> | repl_rs_dir_res {
    return this.resync.dir(a, from)
  }

  resyncSums(a: repl_rs_sums_args, from: CallOrigin): Promise<repl_rs_sums_res> | repl_rs_sums_res {
    return this.resync.sums(a, from)
  }

  resyncData(a: repl_rs_data_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    return this.resync.data(a, from)
  }

  resyncEnd(a: repl_rs_end_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    return this.resync.end(a, from)
  }

  /**
   * RESYNC_END made the export's tree the primary's as of p0, durably: its position is p0 from
   * now on, in whichever log (after a new epoch, the new primary's, which may count lower than
   * the old one did). A cached reply for a change up to p0 is then usable; one for a later
   * change waits for its APPEND.
   */
  resynced(exportId: number, p0: bigint): void {
    this.durableWaits.reached(exportId, p0)
  }

  /** The export's resync progress (null when none ran since this node started). */
  resyncProgress(id: number): (ResyncProgress & { running: boolean }) | null {
    return this.resync.progress(id)
  }

  /** Resolves once no APPEND is applying or queued (for shutdown: the target is then quiet). */
  async idle(): Promise<void> {
    await Promise.all([...this.exports.values()].map((e) => e.tail))
  }

  status(): repl_status_res {
    return { status: STAT.REPL_OK, ok: statusToWire(this.view()) }
  }

  failures(): repl_failures_res {
    return { status: STAT.REPL_OK, ok: failuresToWire(this.view().failures) }
  }

  /** The node's view (also for the metrics). */
  view(): NodeStatus {
    const me = this.state.get()
    const peers: PeerStatus[] = []
    const cur = this.attached
    if (cur !== null) {
      const positions = this.positions()
      peers.push({
        node: cur.node,
        address: cur.address,
        role: 'primary',
        alive: this.isLive(cur),
        lastHeartbeatAgeMs: this.now() - cur.lastSeen,
        acked: positions.reduce<bigint | null>((m, p) => (m === null || p.applied < m ? p.applied : m), null) ?? 0n,
        lagOps: 0n,
        lagBytes: 0n,
        state: this.isLive(cur) ? 'attached' : 'silent',
      })
    }
    peers.push(...(this.extraPeers?.() ?? []))
    // The primary shows this standby as "failed: NOSPC" and stops shipping to it; this node's own
    // status says the same, with where and since when, so its operator need not ask the primary.
    const failures: ExportFailure[] = []
    for (const e of this.exports.values()) {
      if (e.failed !== STAT.REPL_NOSPC || e.full === null) continue
      failures.push({ exportId: e.ex.id, state: 'failed: NOSPC', code: e.full.code, path: e.ex.path, sinceMs: e.full.sinceMs })
    }
    return { node: me.node, role: me.role, epoch: me.epoch, positions: this.positions(), peers, ...(failures.length === 0 ? {} : { failures }) }
  }

  async takeover(a: repl_takeover_args): Promise<repl_takeover_res> {
    const me = this.state.get()
    if (me.role === 'primary') return { status: STAT.REPL_OK, epoch: me.epoch }
    if (me.role !== 'standby') return { status: STAT.REPL_NOT_STANDBY }
    if (this.takingOver) return { status: STAT.REPL_BUSY }
    const cur = this.attached
    if (!a.force && cur !== null && this.isLive(cur)) {
      this.log.warn({ primary: cur.node }, 'replication: TAKEOVER refused, the primary still answers (use force)')
      return { status: STAT.REPL_BUSY }
    }
    this.takingOver = true
    // Replies still waiting for their changes are not stored now: those changes will not come.
    this.durableWaits.cancel()
    let epoch: bigint
    try {
      // Let the APPENDs already running finish, so the new primary serves everything it acknowledged.
      await this.idle()
      epoch = (await this.state.update({ role: 'primary', epoch: this.state.get().epoch + 1n })).epoch
      this.attached = null
    } finally {
      this.takingOver = false
    }
    this.log.warn({ epoch: epoch.toString(), force: a.force }, 'replication: this node took over as primary')
    try {
      await this.onTakeover?.(epoch)
    } catch (err) {
      this.log.error({ err }, 'replication: takeover hook failed')
      return { status: STAT.REPL_IO }
    }
    return { status: STAT.REPL_OK, epoch }
  }

  private positions(): ExportPosition[] {
    return [...this.exports.values()].map((e) => ({ exportId: e.ex.id, applied: e.ex.target.position(), needResync: e.failed === STAT.REPL_NEED_RESYNC }))
  }

  private isLive(a: Attached): boolean {
    return !a.conn.aborted && this.now() - a.lastSeen <= this.attachTimeoutMs
  }

  private async store(name: string, data: Buffer): Promise<void> {
    if (this.stored.get(name)?.equals(data) === true) return
    const copy = Buffer.from(data)
    await writeAtomic(join(this.state.dir, PRIMARY_DIR), name, copy)
    this.stored.set(name, copy)
  }

  /**
   * A primary of a higher epoch: a takeover happened since this node last attached. Its
   * positions count changes of the old primary's log, and the new primary's log started afresh
   * at its takeover, so they say nothing about what it has: every export that holds anything
   * needs a full resync (marked durably before the epoch is adopted, so a crash between the
   * two cannot leave old positions under the new epoch).
   */
  private async newEpoch(epoch: bigint, node: string): Promise<void> {
    // The positions will count the new primary's log: cached replies are fixed against the old
    // log's positions first (those whose change came are kept, the others dropped; drc-store.ts).
    await this.replies.settle()
    for (const e of this.exports.values()) {
      // Nothing of the new log is durable here yet: a reply it ships waits for the change's APPEND,
      // or for the full resync's end (resynced), not for the old log's position.
      this.durableWaits.reached(e.ex.id, 0n)
      if (e.failed !== null || e.ex.target.position() === 0n) continue
      await writeResyncMark(this.state.dir, e.ex.id, `primary ${node} serves epoch ${String(epoch)}; positions of the old epoch's log`)
      e.failed = STAT.REPL_NEED_RESYNC
      this.log.warn({ exportId: e.ex.id, node, epoch: epoch.toString(), position: e.ex.target.position().toString() }, 'replication: a new primary (higher epoch); this export needs a full resync')
    }
  }

  private async applyBatch(e: ExportState, first: bigint, changes: readonly Change[]): Promise<repl_append_res> {
    if (e.failed !== null) return { status: e.failed }
    const target = e.ex.target
    const pos = target.position()
    if (first > pos + 1n) return { status: STAT.REPL_GAP, applied: pos }
    let applied = false
    for (let i = 0; i < changes.length; i++) {
      const seq = first + BigInt(i)
      if (seq <= pos) continue
      try {
        await target.apply(seq, changes[i] as Change)
        applied = true
      } catch (err) {
        return this.applyFailed(e, seq, err, applied)
      }
    }
    try {
      const durable = applied ? await target.flush() : pos
      this.durableWaits.reached(e.ex.id, durable)
      return { status: STAT.REPL_OK, durable }
    } catch (err) {
      return this.applyFailed(e, null, err, false)
    }
  }

  /** Makes what was applied before the failure durable (so the next APPEND resumes right after it), then says why. */
  private async applyFailed(e: ExportState, seq: bigint | null, err: unknown, flushFirst: boolean): Promise<repl_append_res> {
    if (flushFirst) await e.ex.target.flush().catch(() => undefined)
    const code = isErrnoError(err) ? err.code : ''
    const where = { exportId: e.ex.id, seq: seq?.toString(), code, err }
    if (FULL.has(code)) {
      e.failed = STAT.REPL_NOSPC
      e.full = { code, sinceMs: Date.now() }
      this.log.error(where, 'replication: standby out of space; export marked failed')
      return { status: STAT.REPL_NOSPC }
    }
    // A flush redoes whole what failed before (vfs/replica/applier.ts), so a deterministic error
    // there fails every retry the same way: it diverged too, and only a resync gets past it.
    if (DIVERGED.has(code)) {
      e.failed = STAT.REPL_NEED_RESYNC
      this.log.error(where, 'replication: a change does not fit this standby\'s tree; export needs a full resync')
      const mark = seq !== null ? `${seq}` : `flush after ${e.ex.target.position()} failed: ${code}`
      await writeAtomic(this.state.dir, resyncMarkName(e.ex.id), `${mark}\n`).catch((werr: unknown) => {
        this.log.error({ err: werr }, 'replication: cannot record the resync mark')
      })
      return { status: STAT.REPL_NEED_RESYNC }
    }
    this.log.error(where, 'replication: standby backend failed')
    return { status: STAT.REPL_IO }
  }
}
