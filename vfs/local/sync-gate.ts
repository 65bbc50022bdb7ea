/*
 * Whether a data call may run on the event loop. Writing 1 MiB into the
 * page cache on the calling thread is ~2x faster here than through the
 * thread pool (the hand-off and the wake-up of a pool thread cost more than
 * the copy on a 2-vCPU machine), but a write can block when the kernel
 * throttles writers (too much dirty memory) or the file system is slow. So:
 * synchronous until one call takes longer than `slowMs`, then through the
 * thread pool for `backoffMs`, then synchronous again.
 */
export class SyncGate {
  readonly #slowMs: number
  readonly #backoffMs: number
  #closedUntil = 0
  /** Times the gate closed (for tests and stats). */
  trips = 0

  constructor(slowMs: number, backoffMs: number) {
    this.#slowMs = slowMs
    this.#backoffMs = backoffMs
  }

  /** True when the next call may run synchronously (never with `slowMs` 0). */
  get open(): boolean {
    if (this.#slowMs <= 0) return false
    return this.#closedUntil === 0 || Date.now() >= this.#closedUntil
  }

  /** Runs `fn` now, timing it; a slow run closes the gate. */
  run<T>(fn: () => T): T {
    const start = performance.now()
    try {
      return fn()
    } finally {
      if (performance.now() - start > this.#slowMs) {
        this.#closedUntil = Date.now() + this.#backoffMs
        this.trips++
      }
    }
  }
}
