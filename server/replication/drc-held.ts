/*
 * A standby's side of REPL_DRC_HELD (xdr/spec/replication.x; drc-ship.ts): a
 * cached reply arrives alongside the change it describes. It is written to
 * replies.drc at once, with that change's (export, seq), while the change is
 * applied and flushed: the two durable writes overlap instead of following one
 * another on every sync reply's path. It is answered REPL_OK only once both are
 * done, and it is *used* (seeded into a new primary's cache, kept across a
 * restart) only once the standby has that change durably (drc-store.ts).
 * Otherwise a primary dying between the two would leave this node, once it
 * takes over, answering a client's retransmission "OK" for a change it never
 * made (RFC 1813 §4.5 replays a reply; it must describe what the server did).
 *
 * REPL_APPEND_DRC carries such entries inside the APPEND of their changes: the
 * same two writes side by side, in one call (one message, one wake-up).
 *
 * ReplyIntake: the standby's REPL_DRC, REPL_DRC_HELD and the entries of
 * REPL_APPEND_DRC. DurableWaits: per
 * export, the position the standby has made durable (an APPEND's flush) and
 * the calls waiting for it to reach a seq.
 */
import { repl_stat as STAT } from '../../xdr/generated/replication.ts'
import type { repl_stat } from '../../xdr/generated/replication.ts'
import type { repl_append_res, repl_drc_args, repl_drc_held_args, repl_drc_held_entry, repl_rs_res } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import type { ReplyStore } from './drc-store.ts'

export interface IntakeOptions {
  store: () => ReplyStore
  waits: DurableWaits
  /**
   * Why a call of `epoch` is refused now, or null: an older epoch -> REPL_STALE_EPOCH; not a
   * standby -> REPL_NOT_STANDBY; no primary of this epoch attached, or a takeover running -> REPL_BUSY.
   */
  refusal: (epoch: bigint) => repl_rs_res | null
  log: Logger
  /** How long an entry waits for its change (the standby's attach timeout). */
  timeoutMs: number
}

export class ReplyIntake {
  private readonly o: IntakeOptions

  constructor(o: IntakeOptions) {
    this.o = o
  }

  /** REPL_DRC: replies the attached primary's cache kept (their changes acknowledged already), stored for a takeover. */
  drc(a: repl_drc_args): Promise<repl_rs_res> | repl_rs_res {
    return this.o.refusal(a.epoch) ?? this.store(a.entries)
  }

  /**
   * REPL_DRC_HELD: the entries written at once, with their (export, seq), while their changes
   * become durable here; REPL_OK once both are done. A change that does not come within the
   * timeout, a takeover or another primary meanwhile: REPL_BUSY, and the entry, written, is
   * never used (its seq is above the durable position; drc-store.ts).
   */
  async drcHeld(a: repl_drc_held_args): Promise<repl_rs_res> {
    const refused = this.o.refusal(a.epoch)
    if (refused !== null) return refused
    const need = new Map<number, bigint>()
    for (const e of a.entries) if (e.seq > (need.get(e.export_id) ?? 0n)) need.set(e.export_id, e.seq)
    // Started together: the write does not wait for the flush, nor the flush for the write.
    const [reached, stored] = await Promise.all([this.o.waits.waitAll(need, this.o.timeoutMs), this.store(a.entries)])
    if (!reached) return { status: STAT.REPL_BUSY }
    return this.o.refusal(a.epoch) ?? stored
  }

  /**
   * REPL_APPEND_DRC's entries: written at once, as REPL_DRC_HELD's are, while `appended` (their
   * batch's apply and flush) runs; REPL_OK once both are done and each entry's change is durable
   * here. A batch refused or failed: REPL_BUSY (its changes are not durable here, so the entries
   * written are not usable; the primary sends them again by REPL_DRC_HELD).
   */
  async withAppend(epoch: bigint, entries: readonly repl_drc_held_entry[], appended: Promise<repl_append_res>): Promise<repl_stat> {
    const refused = this.o.refusal(epoch)
    if (refused !== null) return refused.status
    const stored = entries.length === 0 ? Promise.resolve({ status: STAT.REPL_OK } as repl_rs_res) : this.store(entries)
    const res = await appended.catch(() => null)
    if (res?.status !== STAT.REPL_OK) {
      await stored
      return STAT.REPL_BUSY
    }
    const need = new Map<number, bigint>()
    for (const e of entries) if (e.seq > (need.get(e.export_id) ?? 0n)) need.set(e.export_id, e.seq)
    // The primary puts in only entries of the batch's changes: reached already, unless it did not.
    const [reached, st] = await Promise.all([this.o.waits.waitAll(need, this.o.timeoutMs), stored])
    if (!reached) return STAT.REPL_BUSY
    return (this.o.refusal(epoch) ?? st).status
  }

  /** REPL_OK only once they are on disk: the primary's sync replies wait for this answer. */
  private async store(entries: readonly { key: Buffer; reply: Buffer; export_id?: number; seq?: bigint }[]): Promise<repl_rs_res> {
    try {
      await this.o.store().addAll(entries.map((e) => ({ key: e.key.toString('utf8'), reply: e.reply, exportId: e.export_id ?? 0, seq: e.seq ?? 0n })))
    } catch (err) {
      this.o.log.warn({ err }, 'replication: writing cached replies failed')
      return { status: STAT.REPL_IO }
    }
    return { status: STAT.REPL_OK }
  }
}

interface Waiter {
  exportId: number
  seq: bigint
  resolve: (reached: boolean) => void
  timer: NodeJS.Timeout
}

export class DurableWaits {
  private readonly durable = new Map<number, bigint>()
  private waiters: Waiter[] = []
  private readonly initial: (exportId: number) => bigint

  /** `initial`: an export's durable position before any flush seen here (its applier's, read at start). */
  constructor(initial: (exportId: number) => bigint) {
    this.initial = initial
  }

  /** Calls waiting (for the status, and tests). */
  get waiting(): number {
    return this.waiters.length
  }

  position(exportId: number): bigint {
    return this.durable.get(exportId) ?? this.initial(exportId)
  }

  /**
   * The export's changes up to `seq` are durable here (an APPEND's flush said so). Taken as it
   * comes, lower too: a full resync under a new primary starts its positions over, and a wait
   * of the old primary's is refused by its epoch, not by this position.
   */
  reached(exportId: number, seq: bigint): void {
    this.durable.set(exportId, seq)
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.exportId === exportId && w.seq <= seq) this.settle(w, true)
      else still.push(w)
    }
    this.waiters = still
  }

  /** Resolves true once each export's position reaches its seq, false when `timeoutMs` passes first or cancel() is called. */
  async waitAll(need: ReadonlyMap<number, bigint>, timeoutMs: number): Promise<boolean> {
    for (const [exportId, seq] of need) {
      if (!(await this.wait(exportId, seq, timeoutMs))) return false
    }
    return true
  }

  /** Releases every waiter with false (a takeover, another primary). */
  cancel(): void {
    for (const w of this.waiters) this.settle(w, false)
    this.waiters = []
  }

  private wait(exportId: number, seq: bigint, timeoutMs: number): Promise<boolean> {
    if (seq <= this.position(exportId)) return Promise.resolve(true)
    return new Promise((resolve) => {
      const w: Waiter = {
        exportId,
        seq,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w)
          resolve(false)
        }, timeoutMs),
      }
      this.waiters.push(w)
    })
  }

  private settle(w: Waiter, reached: boolean): void {
    clearTimeout(w.timer)
    w.resolve(reached)
  }
}
