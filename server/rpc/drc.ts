/*
 * Duplicate request cache (RFC 1813 §4.5; DESIGN.md §3.5). Only for
 * non-idempotent procedures: a retransmission of a call still in progress is
 * dropped, one of a finished call gets the original reply bytes again. Keyed
 * by client address (not port: a TCP client reconnects from another port),
 * xid, program, version, procedure, and, as knfsd does, the argument length
 * and a checksum of the first 256 argument bytes, so a reused xid with other
 * arguments is not mistaken for a retransmission.
 */
import { LRUCache } from 'lru-cache'

export interface DrcOptions {
  max: number
  ttlMs: number
}

interface Entry {
  /** null while the original call is in progress. */
  reply: Buffer | null
}

export type DrcLookup = { state: 'new' } | { state: 'in-progress' } | { state: 'done'; reply: Buffer }

const CHECKSUM_BYTES = 256

export class DuplicateRequestCache {
  private readonly cache: LRUCache<string, Entry>
  hits = 0
  inProgressDrops = 0

  constructor(opts: DrcOptions) {
    this.cache = new LRUCache<string, Entry>({ max: opts.max, ttl: opts.ttlMs })
  }

  static key(address: string, xid: number, prog: number, vers: number, proc: number, args: Buffer): string {
    return `${address}|${xid}|${prog}|${vers}|${proc}|${args.length}|${fnv1a(args, CHECKSUM_BYTES)}`
  }

  get size(): number {
    return this.cache.size
  }

  /** Look the call up; a new call is recorded as in progress. */
  begin(key: string): DrcLookup {
    const e = this.cache.get(key)
    if (e === undefined) {
      this.cache.set(key, { reply: null })
      return { state: 'new' }
    }
    if (e.reply === null) {
      this.inProgressDrops++
      return { state: 'in-progress' }
    }
    this.hits++
    return { state: 'done', reply: e.reply }
  }

  /**
   * Keep a copy of the reply: the chunks may point into pooled or request memory.
   * Its own allocation, not Buffer.concat's: a small concat is a slice of Node's
   * shared 8 KiB pool, and one cached reply would keep a whole slab alive (a full
   * cache pinned ~90 MiB for ~5 MiB of replies under load).
   */
  complete(key: string, chunks: readonly Buffer[]): void {
    let length = 0
    for (const c of chunks) length += c.length
    const reply = Buffer.allocUnsafeSlow(length)
    let at = 0
    for (const c of chunks) at += c.copy(reply, at)
    this.cache.set(key, { reply })
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
