/*
 * The duplicate request cache across a takeover (issue 15 §4; RFC 1813 §4.5).
 * A client whose reply to a non-idempotent call (CREATE, REMOVE, RENAME, ...)
 * was lost retransmits the same xid; after a takeover that retransmission
 * reaches the new primary, which would run it again and answer EXIST or
 * NOENT. So the primary ships every reply its cache keeps for such a
 * namespace or attribute call (RepliesShipper, one per standby, REPL_DRC over
 * its own connection), the standby keeps the latest ones (ReplyStore,
 * drc-store.ts, bounded, on disk) and a node taking over puts them in its
 * cache before it serves.
 *
 * Sync mode closes the window: the reply is held until every standby in the
 * sync set has the entry durably and the change it describes, so a client
 * that has the reply finds it on whichever standby takes over. The entry goes
 * as REPL_DRC_HELD alongside the change (the layer left the change's
 * acknowledgement to the reply: vfs/replica/held-changes.ts) and names it
 * (export, seq); the standby writes it while it applies and flushes that
 * change, answers once both are durable, and uses it only once it has the
 * change (drc-held.ts), so the two round trips overlap, and on the standby
 * its two disk writes too. Better still, the entry rides in the APPEND of its
 * change (REPL_APPEND_DRC: one message; the shipper hands it to the sender,
 * its `carrier`, when the change has not gone yet; carried-replies.ts). An
 * older standby (PROC_UNAVAIL) gets REPL_DRC, sent only after the change's
 * acknowledgement (`legacy`).
 * Entries waited for go at once; others gather for `gatherMs`.
 * A standby that leaves the sync set (dead, resyncing) releases its waits, and
 * no wait outlasts the heartbeat timeout.
 *
 * Async mode ships after the reply, in batches: a primary that dies within a
 * batch interval (5 ms) of a reply takes that entry with it (the client then
 * sees what it would without replication).
 *
 * WRITE replies are not shipped: a retransmitted WRITE done again writes the
 * same bytes (its reply's wcc data may differ; nothing else does), and they
 * would be most of the traffic.
 */
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { REPL_MAXDRC, REPL_MAXDRCKEY, REPL_MAXDRCREPLY, TSNFS_REPL_PROG, repl_drc_args, repl_drc_held_args, repl_rs_res, repl_stat as STAT } from '../../xdr/generated/replication.ts'
import { PeerCallError } from '../callback/errors.ts'
import { StreamCaller } from '../callback/stream.ts'
import type { Logger } from '../logger.ts'
import type { ReplyEntry } from './drc-store.ts'
import type { CarriedReply, CarrierHome } from './carried-replies.ts'
import { sleep } from './sleep.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const DRC = { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_DRC.proc }
const DRC_HELD = { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_DRC_HELD.proc }

/** The procedures whose replies are shipped: NFSv3's non-idempotent namespace and attribute calls (RFC 1813 §3.3). */
const P = NFS_PROGRAM.versions.NFS_V3.procs
const SHIPPED = new Set<number>([P.NFSPROC3_SETATTR, P.NFSPROC3_CREATE, P.NFSPROC3_MKDIR, P.NFSPROC3_SYMLINK, P.NFSPROC3_MKNOD, P.NFSPROC3_REMOVE, P.NFSPROC3_RMDIR, P.NFSPROC3_RENAME, P.NFSPROC3_LINK].map((x) => x.proc))

/** Whether a cache entry is one to ship: an NFS namespace or attribute call's, within the wire caps. */
export function shipsReply(proc: { prog: number; proc: number } | null, key: string, reply: Buffer): boolean {
  return proc !== null && proc.prog === NFS_PROGRAM.prog && SHIPPED.has(proc.proc) && Buffer.byteLength(key) <= REPL_MAXDRCKEY && reply.length <= REPL_MAXDRCREPLY
}

export interface ShipperOptions {
  host: string
  port: number
  epoch: () => bigint
  log: Logger
  /** Entries waiting at most; past it the oldest go (default 4096). */
  maxQueued?: number
  /** How long the shipper waits to gather a batch no reply waits for (default 5 ms). */
  gatherMs?: number
  /** Whether replies must still wait for this standby (it is in the sync set); checked while shipping fails. */
  waited?: () => boolean
}

/** A cached reply to ship, and the change it describes (seq 0: none, or one the standbys have). */
export interface ShippedEntry extends ReplyEntry {
  exportId: number
  seq: bigint
  /** Resolves once the sync standbys acknowledged the change (undefined: they have it already). */
  replicated?: Promise<void> | undefined
}

/** An entry to ship; `done` resolves the reply waiting for it (sync mode). */
type Queued = CarriedReply

/** Ships cached replies to one standby, in order, over a connection of its own. */
export class RepliesShipper implements CarrierHome {
  private readonly o: ShipperOptions
  private readonly queue: Queued[] = []
  private readonly maxQueued: number
  private readonly stop$ = new AbortController()
  private wake: (() => void) | null = null
  private loop: Promise<void> | null = null
  /** Entries in the queue a reply waits for. */
  private waiting = 0
  shipped = 0
  dropped = 0
  /**
   * The standby has no REPL_DRC_HELD (an older build answered PROC_UNAVAIL): entries go by
   * REPL_DRC, each only once its change is acknowledged (the standby would store it at once).
   */
  legacy = false
  /**
   * The sender to this standby: it takes an entry waited for into the APPEND of its change when
   * that has not gone yet (REPL_APPEND_DRC); false: send it here.
   */
  carrier: { carry(e: CarriedReply): boolean } | null = null
  /** Entries that went inside an APPEND (REPL_APPEND_DRC). */
  inAppends = 0

  private readonly stopped: Promise<void>

  constructor(o: ShipperOptions) {
    this.o = o
    this.maxQueued = o.maxQueued ?? 4096
    this.stopped = new Promise((resolve) => {
      this.stop$.signal.addEventListener('abort', () => {
        resolve()
      }, { once: true })
    })
  }

  /** Queues an entry to ship after the reply (async mode). */
  push(e: ShippedEntry): void {
    this.enqueue({ ...e, done: null })
  }

  /** Queues an entry and resolves once the standby has it (or answered, or is no longer waited for, or the shipper stopped). */
  pushAndWait(e: ShippedEntry): Promise<void> {
    if (this.stop$.signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const q: Queued = { ...e, done: resolve }
      if (this.carrier?.carry(q) === true) return
      this.waiting++
      this.enqueue(q)
    })
  }

  /** CarrierHome: an APPEND carrying `entries` was answered; not `stored`: they go again from here. */
  carried(entries: readonly Queued[], stored: boolean): void {
    if (!stored) {
      this.returned(entries)
      return
    }
    this.shipped += entries.length
    this.inAppends += entries.length
    for (const e of entries) {
      e.done?.()
      e.done = null
    }
  }

  /** CarrierHome: entries the sender could not carry after all; they go by REPL_DRC_HELD. */
  returned(entries: readonly Queued[]): void {
    for (const e of entries) {
      if (e.done === null) continue
      if (this.stop$.signal.aborted) {
        e.done()
        e.done = null
        continue
      }
      this.waiting++
      this.enqueue(e)
    }
  }

  start(): void {
    this.loop ??= this.run()
  }

  async stop(): Promise<void> {
    this.stop$.abort()
    this.wake?.()
    await this.loop
    this.release(this.queue)
  }

  private enqueue(q: Queued): void {
    this.queue.push(q)
    if (this.queue.length > this.maxQueued) {
      this.release(this.queue.splice(0, 1))
      this.dropped++
    }
    this.wake?.()
  }

  /**
   * One call with `batch`: REPL_DRC_HELD (the standby stores each entry once it has the change), or
   * for an older standby REPL_DRC after the changes' acknowledgements. null: the standby turned out
   * to be older; send again.
   */
  private async send(c: StreamCaller, batch: readonly Queued[]): Promise<{ status: number } | null> {
    if (!this.legacy) {
      const entries = batch.map((e) => ({ export_id: e.exportId, seq: e.seq, key: Buffer.from(e.key), reply: e.reply }))
      try {
        return await c.call(DRC_HELD, repl_drc_held_args, { epoch: this.o.epoch(), entries }, repl_rs_res)
      } catch (err) {
        if (!(err instanceof PeerCallError) || err.status !== 'PROC_UNAVAIL') throw err
        this.o.log.info({ peer: `${this.o.host}:${String(this.o.port)}` }, 'replication: standby has no REPL_DRC_HELD (older build); cached replies go after their changes\' acknowledgements')
        this.legacy = true
        return null
      }
    }
    // Not past stop(): a change never acknowledged must not keep the shipper from stopping.
    await Promise.race([Promise.all(batch.map((e) => e.replicated ?? Promise.resolve())), this.stopped])
    if (this.stop$.signal.aborted) return null
    return c.call(DRC, repl_drc_args, { epoch: this.o.epoch(), entries: batch.map((e) => ({ key: Buffer.from(e.key), reply: e.reply })) }, repl_rs_res)
  }

  private release(entries: readonly Queued[]): void {
    for (const e of entries) {
      if (e.done === null) continue
      e.done()
      e.done = null
      this.waiting--
    }
  }

  private async run(): Promise<void> {
    const signal = this.stop$.signal
    let c: StreamCaller | null = null
    while (!signal.aborted) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        this.wake = null
        // A reply waiting goes at once; otherwise gather a batch.
        if (this.waiting === 0) await sleep(this.o.gatherMs ?? 5, signal)
        continue
      }
      const batch = this.queue.slice(0, REPL_MAXDRC)
      try {
        c ??= await StreamCaller.open({ host: this.o.host, port: this.o.port }, { timeoutMs: 5000, signal })
        const res = await this.send(c, batch)
        if (res === null) continue
        // Sent or refused (a standby not attached yet, another epoch): either way these are done.
        this.queue.splice(0, batch.length)
        this.release(batch)
        if (res.status === STAT.REPL_OK) this.shipped += batch.length
        else this.dropped += batch.length
      } catch (err) {
        this.o.log.debug({ err, peer: `${this.o.host}:${String(this.o.port)}` }, 'replication: shipping cached replies failed; retrying')
        c?.close()
        c = null
        // A standby out of the sync set holds no reply back (its entries still go when it answers).
        if (this.o.waited?.() !== true) this.release(this.queue)
        await sleep(200, signal)
      }
    }
    c?.close()
  }
}

