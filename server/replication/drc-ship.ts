/*
 * The duplicate request cache across a takeover (issue 15 §4; RFC 1813 §4.5).
 * A client whose reply to a non-idempotent call (CREATE, REMOVE, RENAME, ...)
 * was lost retransmits the same xid; after a takeover that retransmission
 * reaches the new primary, which would run it again and answer EXIST or
 * NOENT. So the primary ships every reply its cache keeps for such a
 * namespace or attribute call (RepliesShipper, one per standby, REPL_DRC over
 * its own connection), the standby keeps the latest ones (ReplyStore,
 * bounded) and a node taking over puts them in its cache before it serves.
 *
 * WRITE replies are not shipped: a retransmitted WRITE done again writes the
 * same bytes (its reply's wcc data may differ; nothing else does), and they
 * would be most of the traffic. Replies go after they are sent, in batches,
 * so a primary that dies within a batch interval of a reply takes that entry
 * with it (the client then sees what it would without replication); the
 * change the reply describes is on the standby already (its stable reply
 * waited for it in sync mode). A standby keeps the entries in memory only: a
 * standby restarted before the takeover has none.
 */
import { TSNFS_REPL_PROG, repl_drc_args, repl_rs_res, repl_stat as STAT } from '../../xdr/generated/replication.ts'
import { StreamCaller } from '../callback/stream.ts'
import type { Logger } from '../logger.ts'
import { sleep } from './sleep.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const DRC = { prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: V1.procs.REPL_DRC.proc }

/** The NFS program and the procedures whose replies are shipped (RFC 1813 §3.3). */
const NFS_PROG = 100003
const SHIPPED = new Set([2 /* SETATTR */, 8 /* CREATE */, 9 /* MKDIR */, 10 /* SYMLINK */, 11 /* MKNOD */, 12 /* REMOVE */, 13 /* RMDIR */, 14 /* RENAME */, 15 /* LINK */])
/** The .x caps (REPL_MAXDRC, REPL_MAXDRCKEY, REPL_MAXDRCREPLY). */
const MAX_PER_CALL = 256
const MAX_KEY = 512
const MAX_REPLY = 8192

export interface ReplyEntry {
  key: string
  reply: Buffer
}

/** Whether a cache entry is one to ship: an NFS namespace or attribute call's, within the wire caps. */
export function shipsReply(proc: { prog: number; proc: number } | null, key: string, reply: Buffer): boolean {
  return proc !== null && proc.prog === NFS_PROG && SHIPPED.has(proc.proc) && Buffer.byteLength(key) <= MAX_KEY && reply.length <= MAX_REPLY
}

export interface ShipperOptions {
  host: string
  port: number
  epoch: () => bigint
  log: Logger
  /** Entries waiting at most; past it the oldest go (default 4096). */
  maxQueued?: number
  /** How long the shipper waits to gather a batch (default 5 ms). */
  gatherMs?: number
}

/** Ships cached replies to one standby, in order, over a connection of its own. */
export class RepliesShipper {
  private readonly o: ShipperOptions
  private readonly queue: ReplyEntry[] = []
  private readonly maxQueued: number
  private readonly stop$ = new AbortController()
  private wake: (() => void) | null = null
  private loop: Promise<void> | null = null
  shipped = 0
  dropped = 0

  constructor(o: ShipperOptions) {
    this.o = o
    this.maxQueued = o.maxQueued ?? 4096
  }

  push(e: ReplyEntry): void {
    this.queue.push(e)
    if (this.queue.length > this.maxQueued) {
      this.queue.shift()
      this.dropped++
    }
    this.wake?.()
  }

  start(): void {
    this.loop ??= this.run()
  }

  async stop(): Promise<void> {
    this.stop$.abort()
    this.wake?.()
    await this.loop
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
        await sleep(this.o.gatherMs ?? 5, signal)
        continue
      }
      const batch = this.queue.slice(0, MAX_PER_CALL)
      try {
        c ??= await StreamCaller.open({ host: this.o.host, port: this.o.port }, { timeoutMs: 5000, signal })
        const res = await c.call(DRC, repl_drc_args, { epoch: this.o.epoch(), entries: batch.map((e) => ({ key: Buffer.from(e.key), reply: e.reply })) }, repl_rs_res)
        // Sent or refused (a standby not attached yet, another epoch): either way these are done.
        this.queue.splice(0, batch.length)
        if (res.status === STAT.REPL_OK) this.shipped += batch.length
        else this.dropped += batch.length
      } catch (err) {
        this.o.log.debug({ err, peer: `${this.o.host}:${String(this.o.port)}` }, 'replication: shipping cached replies failed; retrying')
        c?.close()
        c = null
        await sleep(200, signal)
      }
    }
    c?.close()
  }
}

/**
 * The replies a standby holds for its takeover: the latest `maxEntries`
 * within `maxBytes`, oldest out first; a key sent again replaces its entry.
 */
export class ReplyStore {
  private readonly entries = new Map<string, Buffer>()
  private bytes = 0
  private readonly maxEntries: number
  private readonly maxBytes: number

  constructor(o: { maxEntries?: number; maxBytes?: number } = {}) {
    this.maxEntries = o.maxEntries ?? 16_384
    this.maxBytes = o.maxBytes ?? 16 * 1024 * 1024
  }

  get size(): number {
    return this.entries.size
  }

  add(key: string, reply: Buffer): void {
    const old = this.entries.get(key)
    if (old !== undefined) {
      this.bytes -= key.length + old.length
      this.entries.delete(key)
    }
    // Our own copy: the call's buffer is a view of the record.
    this.entries.set(key, Buffer.from(reply))
    this.bytes += key.length + reply.length
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.entries.delete(k)
      this.bytes -= k.length + v.length
    }
  }

  /** Every entry, oldest first (the order a cache seeded with them keeps). */
  all(): [string, Buffer][] {
    return [...this.entries]
  }
}
