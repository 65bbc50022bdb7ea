/**
 * Write generations for a redundant layer's intent log: every member-writing operation takes the
 * next number when it starts and hands it to IntentLog.mark; `horizon()` is the oldest number
 * still running (or the next one to be given out), so every operation numbered below it has
 * completed. A flush reads the horizon before it starts and, once every member is flushed, asks
 * the log to settle the regions whose last mark is below it: those writes are durable. Regions
 * written during the flush, or still being written, keep their bits, and under constant writes
 * the regions no longer written still clear (a "quiet" flush may never come).
 */
export class WriteGenerations {
  #next = 1
  readonly #running = new Set<number>()

  /** Runs `op` as the next generation (given to it), counted as running until it settles. */
  async run<T>(op: (generation: number) => Promise<T>): Promise<T> {
    const generation = this.#next++
    this.#running.add(generation)
    try {
      return await op(generation)
    } finally {
      this.#running.delete(generation)
    }
  }

  /** Every generation below this one has completed. */
  horizon(): number {
    let oldest = this.#next
    // Few operations run at once (the client's requests in flight), so a scan is enough.
    for (const g of this.#running) if (g < oldest) oldest = g
    return oldest
  }
}
