/*
 * Giving memory back once a process has been idle, for the server
 * (server/memory.ts: pools trimmed, then one collection) and the client
 * (client/nfs-client.ts: clean cached blocks dropped; the mount daemon also
 * collects). While work keeps coming the only cost is an unref'd timer
 * comparing a counter. A full collection matters because a Node process
 * with nothing to do may not collect garbage for a long time: what the
 * workload left would stay resident until the next burst.
 *
 * common/ is the base both stack on: node:* imports only, nothing of ours.
 */

/** Checks run this often relative to idleMs, within these bounds. */
const CHECK_DIVISOR = 4
const CHECK_MIN_MS = 50
const CHECK_MAX_MS = 5_000

/**
 * Calls `onIdle` once `activity()` (a counter that grows with work) has not
 * changed for `idleMs`, and again only after it has changed and stopped again.
 */
export class IdleWatch {
  private readonly timer: NodeJS.Timeout
  private last: number
  private since = performance.now()
  private fired = false

  constructor(idleMs: number, activity: () => number, onIdle: () => void) {
    this.last = activity()
    const every = Math.min(CHECK_MAX_MS, Math.max(CHECK_MIN_MS, Math.floor(idleMs / CHECK_DIVISOR)))
    this.timer = setInterval(() => {
      const now = performance.now()
      const a = activity()
      if (a !== this.last) {
        this.last = a
        this.since = now
        this.fired = false
      } else if (!this.fired && now - this.since >= idleMs) {
        this.fired = true
        onIdle()
      }
    }, every)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }
}

let gcFn: (() => void) | null | undefined

/**
 * A full, compacting garbage collection (two by default, see below; `opts` for one, or plain), if this process can ask for one: `gc` exists
 * under `node --expose-gc`; otherwise the flag is set for a moment to get a
 * context that has it (V8 reads the flag when a context is created) and
 * cleared again, so no other code sees a global `gc`. Returns whether it ran.
 */
export function collectGarbage(opts: { compact?: boolean; times?: number } = {}): boolean {
  if (gcFn === undefined) {
    const own = (globalThis as { gc?: unknown }).gc
    if (typeof own === 'function') {
      gcFn = own as () => void
    } else {
      // Loaded here, not at the top: node:v8 and node:vm cost every command ~5 ms of its start-up, for a call that may never come.
      const { setFlagsFromString } = process.getBuiltinModule('node:v8')
      const { runInNewContext } = process.getBuiltinModule('node:vm')
      try {
        setFlagsFromString('--expose-gc')
        const fn: unknown = runInNewContext('typeof gc === "function" ? gc : null')
        gcFn = typeof fn === 'function' ? (fn as () => void) : null
      } catch {
        gcFn = null
      } finally {
        setFlagsFromString('--no-expose-gc')
      }
    }
  }
  if (gcFn === null) return false
  // Compacting, and twice. A walk of a large tree leaves the old generation's pages each holding
  // a few live objects among dead ones (cache entries promoted, then evicted): a plain collection
  // frees the objects but keeps every such page, and V8 gives pages it empties back only at the
  // next collection. Measured in bench/engine-rss.ts (bench/README.md, session 33): after walking
  // 1,000,000 files with cache=64M the server kept 92 MiB of old space for ~40 MiB in use.
  // V8 reads this flag when a collection starts, so it holds for these two only.
  // The heap budget (common/heap-budget.ts) asks for one collection, compacting or not, while work runs.
  const times = opts.times ?? 2
  const compact = opts.compact ?? true
  const { setFlagsFromString } = process.getBuiltinModule('node:v8')
  if (compact) setFlagsFromString('--compact-on-every-full-gc')
  try {
    for (let i = 0; i < times; i++) gcFn()
  } finally {
    if (compact) setFlagsFromString('--no-compact-on-every-full-gc')
  }
  return true
}
