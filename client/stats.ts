/*
 * Counters of what the client did (issue 4 point 10): RPC calls per
 * procedure, cache hits and misses. Groups are open so the data path can add
 * its own ('blockCache', 'readAhead', …) without touching this file.
 */
import type { TransportCounters } from './rpc/transport.ts'

export interface AttrCacheCounters {
  /** getattr answered from a fresh cached entry. */
  hits: number
  /** getattr that had to ask the server (absent, expired, revalidate or noac). */
  misses: number
  /** Attributes fed in from any reply. */
  updates: number
  /** Refreshes that showed a changed mtime, ctime or size (change events emitted). */
  changes: number
}

export interface NameCacheCounters {
  /** Positive entry used instead of a LOOKUP. */
  hits: number
  /** Not cached, or the directory's attributes not fresh: a LOOKUP follows. */
  misses: number
  /** Negative entry used: ENOENT without a LOOKUP. */
  negativeHits: number
  /** Directories whose entries were dropped (change, ESTALE, explicit). */
  dirDrops: number
}

export interface ClientStatsSnapshot {
  /** NFSv3 calls per procedure short name: { GETATTR: 2, LOOKUP: 4 }. Absent = 0. */
  nfs: Record<string, number>
  /** MOUNT calls per procedure short name (MNT, UMNT, EXPORT, DUMP, NULL). */
  mount: Record<string, number>
  /** PORTMAP calls (GETPORT, DUMP). */
  portmap: Record<string, number>
  /** What the NFS transport did (retransmits, reconnects, per-try timeouts). */
  rpc: TransportCounters
  attrCache: AttrCacheCounters
  nameCache: NameCacheCounters
  /** Groups added by other parts of the client (see ClientStats.add). */
  extra: Record<string, Record<string, number>>
}

export class ClientStats {
  readonly nfs: Record<string, number> = {}
  readonly mount: Record<string, number> = {}
  readonly portmap: Record<string, number> = {}
  readonly attrCache: AttrCacheCounters = { hits: 0, misses: 0, updates: 0, changes: 0 }
  readonly nameCache: NameCacheCounters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  private readonly extra = new Map<string, Record<string, number>>()
  private transport: (() => TransportCounters) | null = null

  /** Where the rpc group comes from (the NFS transport). */
  watchTransport(counters: () => TransportCounters): void {
    this.transport = counters
  }

  /** Add n to counter `key` of an open group ('blockCache', 'hits'). */
  add(group: string, key: string, n = 1): void {
    let g = this.extra.get(group)
    if (g === undefined) {
      g = {}
      this.extra.set(group, g)
    }
    g[key] = (g[key] ?? 0) + n
  }

  snapshot(): ClientStatsSnapshot {
    const extra: Record<string, Record<string, number>> = {}
    for (const [k, v] of this.extra) extra[k] = { ...v }
    return {
      nfs: { ...this.nfs },
      mount: { ...this.mount },
      portmap: { ...this.portmap },
      rpc: this.transport === null ? { retransmits: 0, reconnects: 0, timeouts: 0 } : this.transport(),
      attrCache: { ...this.attrCache },
      nameCache: { ...this.nameCache },
      extra,
    }
  }
}

/** Count one call of a procedure: tables are keyed by the short name. */
export function bump(table: Record<string, number>, name: string): void {
  table[name] = (table[name] ?? 0) + 1
}
