/*
 * Duplicate request cache (RFC 1813 §4.5; DESIGN.md §3.5). Only for
 * non-idempotent procedures: a retransmission of a call still in progress is
 * dropped, one of a finished call gets the original reply bytes again. Keyed
 * by client address (not port: a TCP client reconnects from another port),
 * xid, program, version, procedure, and, as knfsd does, the argument length
 * and a checksum of the first 256 argument bytes, so a reused xid with other
 * arguments is not mistaken for a retransmission.
 */
import type { HeldChange } from '../../vfs/replica/held-changes.ts'
import { DrcStore } from './drc-lru.ts'

export interface DrcOptions {
  /** Entries kept at most. */
  max: number
  /** Bytes the entries may charge at most (ENTRY_COST each, more for a larger reply); default: no byte bound. */
  maxBytes?: number
  ttlMs: number
}

export type DrcLookup = { state: 'new' } | { state: 'in-progress' } | { state: 'done'; reply: Buffer }
const NEW: DrcLookup = Object.freeze({ state: 'new' })
const IN_PROGRESS: DrcLookup = Object.freeze({ state: 'in-progress' })

const CHECKSUM_BYTES = 256
/** Replies up to this size are packed into shared slabs; bigger ones get their own buffer. */
const SLAB_ITEM_MAX = 4096
const SLAB_SIZE = 64 * 1024
/**
 * What an entry charges against maxBytes when its reply is at most REPLY_INCLUDED bytes (nearly
 * all: WRITE, CREATE, SETATTR replies are a few hundred): the key string, the entry, the LRU's
 * slots, the reply and its share of a slab. A larger reply charges its length on top.
 */
export const DRC_ENTRY_COST = 1024
const REPLY_INCLUDED = 512

/**
 * Bump allocation of cached replies in our own 64 KiB slabs: an allocation of
 * its own per reply (a malloc'ed backing store each) was a measurable part of
 * every CREATE. A slab lives while any reply in it does; entries leave in LRU
 * order and a replayed reply is copied into the current slab, so the order of
 * slabs follows the order of entries and old slabs empty out as entries age:
 * at most about one slab more than the live replies is held.
 */
class ReplyArena {
  private slab = Buffer.allocUnsafeSlow(0)
  private used = 0

  copy(chunks: readonly Buffer[]): Buffer {
    let length = 0
    for (const c of chunks) length += c.length
    let out: Buffer
    if (length > SLAB_ITEM_MAX) {
      out = Buffer.allocUnsafeSlow(length)
    } else {
      if (this.used + length > this.slab.length) {
        this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
        this.used = 0
      }
      out = this.slab.subarray(this.used, this.used + length)
      // Keep slices 8-byte aligned, as Node's own pool does.
      this.used = (this.used + length + 7) & ~7
    }
    let at = 0
    for (const c of chunks) at += c.copy(out, at)
    return out
  }
}

export class DuplicateRequestCache {
  private readonly cache: DrcStore
  private readonly arena = new ReplyArena()
  hits = 0
  inProgressDrops = 0
  /**
   * Told of every reply kept (replication ships them to standbys: server/replication/drc-ship.ts);
   * a promise returned holds the reply back until it settles (replication: the change durable in
   * the local log and, in sync mode, on the standbys).
   */
  onComplete: ((key: string, reply: Buffer, held?: readonly HeldChange[]) => Promise<void> | undefined) | null = null
  /**
   * The calls run in a scope that collects the changes whose durability the replicating layer
   * left to the reply (vfs/replica/held-changes.ts): a replicating primary. They reach
   * onComplete, whose promise holds the reply until those are durable too.
   */
  collectsHeld = false

  constructor(opts: DrcOptions) {
    this.cache = new DrcStore(opts.max, Math.max(opts.maxBytes ?? Number.MAX_SAFE_INTEGER, DRC_ENTRY_COST), opts.ttlMs)
  }

  /** Bytes charged by the entries (an estimate, see DRC_ENTRY_COST). */
  get bytes(): number {
    return this.cache.bytes
  }

  /** Drop expired entries now (the store drops them only when touched), so their slabs can be freed; returns the bytes dropped. */
  trim(): number {
    const before = this.cache.bytes
    this.cache.purgeStale()
    return before - this.cache.bytes
  }

  static key(address: string, xid: number, prog: number, vers: number, proc: number, args: Buffer): string {
    return `${address}|${xid}|${prog}|${vers}|${proc}|${args.length}|${fnv1a(args, CHECKSUM_BYTES)}`
  }

  /** The program and procedure a key() names (null: not a key of ours). */
  static procOf(key: string): { prog: number; proc: number } | null {
    const f = key.split('|')
    if (f.length !== 7) return null
    return { prog: Number(f[2]), proc: Number(f[4]) }
  }

  get size(): number {
    return this.cache.size
  }

  /** Look the call up; a new call is recorded as in progress. */
  begin(key: string): DrcLookup {
    const e = this.cache.get(key)
    if (e === undefined) {
      this.cache.set(key, null, DRC_ENTRY_COST)
      return NEW
    }
    if (e.reply === null) {
      this.inProgressDrops++
      return IN_PROGRESS
    }
    this.hits++
    // Moved to the current slab along with the entry's move to the LRU's front (see ReplyArena).
    e.reply = this.arena.copy([e.reply])
    return { state: 'done', reply: e.reply }
  }

  /**
   * Keep a copy of the reply: the chunks may point into pooled or request memory.
   * In our own slabs, not Buffer.concat's: a small concat is a slice of Node's
   * shared 8 KiB pool, and one cached reply would keep a whole pool slab of other
   * data alive (a full cache pinned ~90 MiB for ~5 MiB of replies under load).
   */
  complete(key: string, chunks: readonly Buffer[], held?: readonly HeldChange[]): Promise<void> | undefined {
    const reply = this.arena.copy(chunks)
    const hold = this.onComplete?.(key, reply, held)
    if (hold === undefined) {
      this.fill(key, reply)
      return undefined
    }
    // Held (replication): the entry stays in progress until the reply may go, so a
    // retransmission meanwhile is dropped, not answered with what is not durable yet.
    return hold.then(() => {
      this.fill(key, reply)
    })
  }

  private fill(key: string, reply: Buffer): void {
    // Usually the in-progress entry begin() made: filled in place (a second set() is dearer).
    const e = this.cache.peek(key)
    if (reply.length > REPLY_INCLUDED) this.cache.set(key, reply, DRC_ENTRY_COST + reply.length)
    else if (e !== undefined) e.reply = reply
    else this.cache.set(key, reply, DRC_ENTRY_COST)
  }

  /** The call produced no reply (or failed to): let a retransmission run it again. */
  abandon(key: string): void {
    this.cache.delete(key)
  }
}

function fnv1a(buf: Buffer, limit: number): number {
  let h = 0x811c_9dc5
  const n = Math.min(buf.length, limit)
  for (let i = 0; i < n; i++) {
    h ^= buf[i] ?? 0
    h = Math.imul(h, 0x0100_0193)
  }
  return h >>> 0
}
