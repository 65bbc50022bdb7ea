/*
 * The grace period after a restart (XNFS 3W ch. 10, "crash recovery"): for a
 * while only reclaims of locks held before the restart are granted, so a
 * client that is still learning of our restart does not find its lock taken.
 * It ends after `durationMs`, or sooner once every client we were monitoring
 * when we went down has reclaimed and then been quiet for `quietMs` (or has
 * moved on to ordinary requests), and at once when there is nobody to wait for.
 */

export interface GraceOptions {
  durationMs: number
  /** The clients that held locks when we stopped (the status monitor's list). */
  expected: readonly string[]
  /** How long a client's reclaims must have stopped before it counts as done. */
  quietMs: number
  onEnd?: (reason: 'expired' | 'reclaimed') => void
}

export class GracePeriod {
  private readonly pending: Map<string, number | null>
  private readonly opts: GraceOptions
  private timer: NodeJS.Timeout | null = null
  private quietTimer: NodeJS.Timeout | null = null
  private ended = false

  constructor(opts: GraceOptions) {
    this.opts = opts
    // null: not heard from yet; a number: when its last reclaim arrived.
    this.pending = new Map(opts.expected.map((n) => [n, null]))
    if (opts.durationMs <= 0 || this.pending.size === 0) {
      this.ended = true
      return
    }
    this.timer = setTimeout(() => { this.end('expired'); }, opts.durationMs)
    this.timer.unref()
  }

  get active(): boolean {
    return !this.ended
  }

  /** A client reclaimed a lock or share. */
  reclaimed(client: string): void {
    if (this.ended || !this.pending.has(client)) return
    this.pending.set(client, performance.now())
    this.armQuiet()
  }

  /** A client sent an ordinary request: it has finished reclaiming. */
  settled(client: string): void {
    if (this.ended || !this.pending.delete(client)) return
    if (this.pending.size === 0) this.end('reclaimed')
  }

  /** A client restarted again or was freed: there is nothing left to wait for from it. */
  forget(client: string): void {
    this.settled(client)
  }

  end(reason: 'expired' | 'reclaimed' = 'expired'): void {
    if (this.ended) return
    this.ended = true
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.quietTimer !== null) clearTimeout(this.quietTimer)
    this.timer = this.quietTimer = null
    this.opts.onEnd?.(reason)
  }

  private armQuiet(): void {
    if (this.quietTimer !== null) clearTimeout(this.quietTimer)
    this.quietTimer = setTimeout(() => { this.checkQuiet(); }, this.opts.quietMs)
    this.quietTimer.unref()
  }

  private checkQuiet(): void {
    this.quietTimer = null
    const now = performance.now()
    let wait = 0
    for (const [client, at] of this.pending) {
      if (at === null) return // someone has not reclaimed yet: only the deadline ends it
      if (now - at >= this.opts.quietMs) this.pending.delete(client)
      else wait = Math.max(wait, this.opts.quietMs - (now - at))
    }
    if (this.pending.size === 0) this.end('reclaimed')
    else if (wait > 0) this.armQuiet()
  }
}
