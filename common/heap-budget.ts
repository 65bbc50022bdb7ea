/*
 * A soft bound on V8's heap while a process works. Under a high allocation rate (a walk of a
 * large tree: decoded inodes, attributes and handles promoted to old space, then evicted from
 * bounded caches) V8 lets the old generation grow to several times what is live before it
 * collects: bench/README.md (session 33) measured the server's heap at 5× its live size while
 * walking 1,000,000 files. `--max-old-space-size` bounds it by aborting the process when live
 * data reaches it; this does not: an unref'd timer reads the heap's reserved size (cheap) and,
 * past the budget, runs one full collection, at most once per interval. If what is live exceeds
 * the budget the collections free little and the heap grows as it would have, at the cost of
 * one collection per interval.
 *
 * common/ is the base: node:* imports only (and common/idle.ts's gc).
 */
import { collectGarbage } from './idle.ts'

export interface HeapBudgetStats {
  /** Collections the budget forced. */
  collections: number
  /** Their pauses, summed and the longest (ms). */
  pauseMs: number
  maxPauseMs: number
}

export interface HeapBudgetOptions {
  /** Reserved heap (bytes, V8's total_heap_size) above which a collection runs. */
  bytes: number
  /** Checks (and at most one collection) this often (ms). */
  intervalMs: number
  /** Compact the old generation in the collection (default false: V8's own choice of pages). */
  compact?: boolean
}

/** Checks the heap every `intervalMs`; collects garbage when it is over budget. */
export class HeapBudget {
  readonly stats: HeapBudgetStats = { collections: 0, pauseMs: 0, maxPauseMs: 0 }
  readonly opts: HeapBudgetOptions
  private readonly timer: NodeJS.Timeout

  constructor(opts: HeapBudgetOptions) {
    this.opts = opts
    this.timer = setInterval(() => { this.check() }, opts.intervalMs)
    this.timer.unref()
  }

  /** What the timer runs: a collection if the reserved heap is over budget. Returns whether one ran. */
  check(): boolean {
    // Loaded here, not at the top: node:v8 costs every command's start-up (see common/idle.ts).
    const { getHeapStatistics } = process.getBuiltinModule('node:v8')
    return getHeapStatistics().total_heap_size > this.opts.bytes && this.collect()
  }

  /** One full collection, timed (also what a check past the budget runs). */
  collect(): boolean {
    const t0 = performance.now()
    const ran = collectGarbage({ times: 1, compact: this.opts.compact ?? false })
    if (!ran) return false
    const ms = performance.now() - t0
    this.stats.collections++
    this.stats.pauseMs += ms
    if (ms > this.stats.maxPauseMs) this.stats.maxPauseMs = ms
    return true
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
