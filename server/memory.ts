/*
 * Memory given back when the server is idle. Pools (record buffers, the
 * memory backend's freed chunks, the local backend's READ buffers) keep
 * buffers so that a busy server does not page-fault fresh memory for every
 * request; once no request has arrived for `idleMs`, they are trimmed to
 * their floors, clean caches drop what has expired, and a compacting garbage
 * collection runs, so the buffers just let go (and the garbage the workload
 * left) are freed now rather than at some later collection that an idle
 * process never triggers. While requests keep coming nothing is trimmed:
 * the only work is an unref'd timer comparing a byte counter.
 */
import { IdleWatch, collectGarbage } from '../common/idle.ts'
import { HeapBudget } from '../common/heap-budget.ts'
import type { HeapBudgetStats } from '../common/heap-budget.ts'
import type { Logger } from './logger.ts'
import type { VfsCacheCounts } from '../vfs/types.ts'

/** A pool or cache whose bytes the metrics show and the reclaimer trims. */
export interface MemoryHolder {
  /** Metric label: `record`, `chunks`, `read`, `drc`, … */
  readonly name: string
  readonly kind: 'pool' | 'cache'
  /** Bytes held now (free buffers for a pool, entries for a cache). */
  bytes(): number
  /** Give back what is not needed while idle (down to a floor, or expired entries); returns the bytes let go. */
  trim(): number
  /** A cache's byte bound, where it has one. */
  limit?(): number
  /** A cache's hits, misses and evictions, where it counts them. */
  counts?(): VfsCacheCounts
}

export interface ServerMemoryOptions {
  /** No request for this long: trim pools and caches and collect garbage (ms; 0: never). Default 30 s. */
  idleMs: number
  /** Freed 1 MiB chunks of memory exports kept for reuse while busy (bytes; default 256 MiB). */
  chunkPoolBytes: number
  /** Idle 1 MiB READ buffers of local exports kept while busy (bytes; default 32 MiB). */
  readPoolBytes: number
  /** Run a full garbage collection after trimming (default true). */
  gc: boolean
  /**
   * While busy: a full collection when V8's reserved heap exceeds this (bytes; 0: off), at most
   * once per second (common/heap-budget.ts). Default 0: measured over a 1,000,000-file walk (bench/README.md, session 34), 128 MiB took
   * a third to a half off what the walk adds to RSS, but its collections took 5–15 % of the walking time (the walk 30–60 % longer),
   * and RSS stayed above cache= + 150 MiB.
   */
  heapBudgetBytes: number
}

/** How often the heap budget is checked (ms). */
export const HEAP_BUDGET_INTERVAL_MS = 1000

export const DEFAULT_SERVER_MEMORY: Readonly<ServerMemoryOptions> = Object.freeze({
  idleMs: 30_000,
  chunkPoolBytes: 256 * 1024 * 1024,
  readPoolBytes: 32 * 1024 * 1024,
  gc: true,
  heapBudgetBytes: 0,
})

export interface ReclaimStats {
  /** Idle periods that trimmed and collected. */
  reclaims: number
  /** Bytes let go by trims, over all reclaims. */
  trimmedBytes: number
}

/** The server's pools and caches, and the idle reclaim over them. */
export class MemoryReclaimer {
  readonly #fixed: MemoryHolder[] = []
  /** Holders that come and go (the caches of the exports served now). */
  readonly #sources: Array<() => readonly MemoryHolder[]> = []
  readonly stats: ReclaimStats = { reclaims: 0, trimmedBytes: 0 }
  private readonly gc: boolean
  private readonly log: Logger | undefined
  private watch: IdleWatch | null = null
  private budget: HeapBudget | null = null

  constructor(opts: { gc: boolean; log?: Logger }) {
    this.gc = opts.gc
    this.log = opts.log
  }

  add(h: MemoryHolder): void {
    this.#fixed.push(h)
  }

  /** Holders asked for at each look: an export's caches exist while it is served (a reload changes them). */
  addSource(list: () => readonly MemoryHolder[]): void {
    this.#sources.push(list)
  }

  get holders(): readonly MemoryHolder[] {
    if (this.#sources.length === 0) return this.#fixed
    return [...this.#fixed, ...this.#sources.flatMap((s) => s())]
  }

  /** Start watching `activity` (0 idleMs: never reclaim). */
  start(idleMs: number, activity: () => number): void {
    if (idleMs > 0) this.watch = new IdleWatch(idleMs, activity, () => { this.reclaim() })
  }

  /** Keep V8's heap near `bytes` while busy (0: off). */
  startBudget(bytes: number, intervalMs = HEAP_BUDGET_INTERVAL_MS): void {
    if (bytes > 0 && this.gc) this.budget = new HeapBudget({ bytes, intervalMs })
  }

  /** The heap budget's collections so far (zeros when off). */
  budgetStats(): HeapBudgetStats {
    return this.budget?.stats ?? { collections: 0, pauseMs: 0, maxPauseMs: 0 }
  }

  /** Trim every holder, then collect garbage. Returns the bytes trimmed. */
  reclaim(): number {
    let trimmed = 0
    for (const h of this.holders) trimmed += h.trim()
    this.stats.reclaims++
    this.stats.trimmedBytes += trimmed
    const collected = this.gc && collectGarbage()
    this.log?.debug({ trimmed, collected, rss: process.memoryUsage.rss() }, 'idle: memory given back')
    return trimmed
  }

  stop(): void {
    this.watch?.stop()
    this.watch = null
    this.budget?.stop()
    this.budget = null
  }
}
