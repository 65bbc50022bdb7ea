/*
 * The standby's side of a full resync (RESYNC_BEGIN, _DIR, _SUMS, _DATA, _END; the statuses
 * are in standby-service.ts's header, as for APPEND). Every call passes the gate APPEND passes
 * (epoch, role, the attached primary's connection, the export, its queue) and runs in the
 * export's queue, after the APPENDs before it. Begun durably: a mark file in the state
 * directory says the export needs a resync until RESYNC_END removes it, so a standby restarted
 * mid-resync starts over rather than serving half a tree.
 */
import { open as openFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { isErrnoError } from '../../vfs/errors.ts'
import type {
  repl_rs_begin_args,
  repl_rs_data_args,
  repl_rs_dir_args,
  repl_rs_dir_res,
  repl_rs_end_args,
  repl_rs_res,
  repl_rs_sums_args,
  repl_rs_sums_res,
} from '../../xdr/generated/replication.ts'
import { repl_stat as STAT } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import { writeAtomic } from './node-state.ts'
import { resyncMarkName } from './rejoin.ts'
import { timeFromRepl } from './change-codec.ts'
import { rsDirFromWire } from './resync-codec.ts'
import type { ResyncTarget } from './resync-target.ts'
import type { CallOrigin, ExportState, ResyncProgress, RsFail } from './standby-types.ts'

/** Backend errors that mean the standby is full (the export is then failed with REPL_NOSPC). */
export const FULL = new Set(['ENOSPC', 'EDQUOT'])

/** Why the gate refused a call: statuses both APPEND's and every RESYNC_* reply can carry. */
export type GateFail = { status: typeof STAT.REPL_STALE_EPOCH; epoch: bigint } | { status: typeof STAT.REPL_NOT_STANDBY | typeof STAT.REPL_BUSY | typeof STAT.REPL_NO_EXPORT }

/** What APPEND and the resync calls share in the service. */
export interface StandbyGate {
  readonly stateDir: string
  readonly log: Logger
  /** Epoch, role, the attached primary's connection, the export: the export, or why not. */
  admit(a: { epoch: bigint; export_id: number }, from: CallOrigin): ExportState | GateFail
  /** fn in the export's queue, after what is queued; REPL_BUSY when the queue is full. */
  queue<R>(e: ExportState, from: CallOrigin, fn: () => Promise<R>): Promise<R> | { status: typeof STAT.REPL_BUSY }
  /** A full resync ended: the export's changes up to p0 are durable here (cached replies waiting for them are usable). */
  resynced(exportId: number, p0: bigint): void
}

export class StandbyResync {
  readonly #gate: StandbyGate
  readonly #exports: ReadonlyMap<number, ExportState>

  constructor(gate: StandbyGate, exports: ReadonlyMap<number, ExportState>) {
    this.#gate = gate
    this.#exports = exports
  }

  /** RESYNC_BEGIN: the export needs a resync from now until RESYNC_END, durably (a restart starts over). */
  begin(a: repl_rs_begin_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    return this.#call(a, from, false, async (e) => {
      await writeAtomic(this.#gate.stateDir, resyncMarkName(e.ex.id), `resync from ${String(a.p0)}\n`)
      e.failed = STAT.REPL_NEED_RESYNC
      e.resyncing = a.p0
      e.progress = { dirs: 0, files: 0, bytes: 0 }
      await e.ex.resync?.begin(a.p0)
      this.#gate.log.info({ exportId: e.ex.id, p0: a.p0.toString() }, 'replication: full resync begun')
      return { status: STAT.REPL_OK }
    })
  }

  dir(a: repl_rs_dir_args, from: CallOrigin): Promise<repl_rs_dir_res> | repl_rs_dir_res {
    let part: ReturnType<typeof rsDirFromWire>
    try {
      part = rsDirFromWire(a)
    } catch (err) {
      this.#gate.log.warn({ err, exportId: a.export_id }, 'replication: RESYNC_DIR refused, it breaks the wire rules')
      return { status: STAT.REPL_BAD_CHANGE }
    }
    return this.#call(a, from, true, async (e, target) => {
      const needs = await target.dir(part)
      if (part.cookieFrom === 0n) e.progress.dirs++
      return { status: STAT.REPL_OK, needs: needs.map((n) => ({ ref: n.ref, want: n.want === 'data' ? 1 : 2 })) }
    })
  }

  sums(a: repl_rs_sums_args, from: CallOrigin): Promise<repl_rs_sums_res> | repl_rs_sums_res {
    return this.#call(a, from, true, async (_e, target) => ({ status: STAT.REPL_OK, sums: await target.sums(a.ref, a.first_range, a.count) }))
  }

  data(a: repl_rs_data_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    let times: { atime: ReturnType<typeof timeFromRepl>; mtime: ReturnType<typeof timeFromRepl> }
    try {
      times = { atime: timeFromRepl(a.atime), mtime: timeFromRepl(a.mtime) }
    } catch {
      return { status: STAT.REPL_BAD_CHANGE }
    }
    // Our own copy: the call's buffer is a view of the record, and the apply waits its turn.
    const data = Buffer.from(a.data)
    return this.#call(a, from, true, async (e, target) => {
      await target.data(a.ref, a.offset, data, a.last, times.atime, times.mtime)
      e.progress.bytes += data.length
      if (a.last) e.progress.files++
      return { status: STAT.REPL_OK }
    })
  }

  /** RESYNC_END: the tree matches the primary's as of P0; the position becomes P0 and the mark goes. */
  end(a: repl_rs_end_args, from: CallOrigin): Promise<repl_rs_res> | repl_rs_res {
    return this.#call(a, from, true, async (e, target) => {
      if (e.resyncing !== a.p0) return { status: STAT.REPL_BAD_CHANGE }
      await target.end(a.p0, a.walked_until)
      await rm(join(this.#gate.stateDir, resyncMarkName(e.ex.id)), { force: true })
      await syncDir(this.#gate.stateDir)
      e.failed = null
      e.resyncing = null
      this.#gate.resynced(e.ex.id, a.p0)
      this.#gate.log.info({ exportId: e.ex.id, p0: a.p0.toString(), ...e.progress }, 'replication: full resync done')
      return { status: STAT.REPL_OK }
    })
  }

  /** The export's resync progress (null when none ran since this node started). */
  progress(id: number): (ResyncProgress & { running: boolean }) | null {
    const e = this.#exports.get(id)
    if (e === undefined) return null
    return { ...e.progress, running: e.resyncing !== null }
  }

  /**
   * The gate, then `run` in the export's queue. A call of a resync that was not begun is
   * REPL_BAD_CHANGE; a backend error fails the call (REPL_NOSPC, else REPL_IO) and the primary
   * starts over later; the mark stays.
   */
  #call<R>(a: { epoch: bigint; export_id: number }, from: CallOrigin, begun: boolean, run: (e: ExportState, target: ResyncTarget) => Promise<R>): Promise<R | RsFail> | RsFail {
    const e = this.#gate.admit(a, from)
    if ('status' in e) return e
    const target = e.ex.resync
    if (target === undefined) return { status: STAT.REPL_NEED_RESYNC }
    if (e.failed === STAT.REPL_NOSPC) return { status: STAT.REPL_NOSPC }
    return this.#gate.queue(e, from, async (): Promise<R | RsFail> => {
      if (begun && e.resyncing === null) return { status: STAT.REPL_BAD_CHANGE }
      try {
        return await run(e, target)
      } catch (err) {
        const code = isErrnoError(err) ? err.code : ''
        this.#gate.log.error({ err, exportId: e.ex.id, code }, 'replication: resync call failed on this standby')
        return { status: FULL.has(code) ? STAT.REPL_NOSPC : STAT.REPL_IO }
      }
    })
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await openFile(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}
