/*
 * The server-wide cap on requests in flight (all TCP connections and UDP
 * together). A connection that cannot take a slot keeps its records in its
 * backlog, stops reading, and waits in line; each slot given back goes to the
 * longest waiter first, so one busy client cannot starve the others.
 */
export class InFlightBudget {
  readonly max: number
  private used = 0
  /** Insertion-ordered: the first waiter is the oldest. */
  private readonly waiting = new Set<() => void>()

  constructor(max: number) {
    this.max = Math.max(1, max)
  }

  get inUse(): number {
    return this.used
  }

  tryTake(): boolean {
    if (this.used >= this.max) return false
    this.used++
    return true
  }

  give(): void {
    this.used--
    // A woken waiter takes what it can and queues itself again if it still has work.
    while (this.used < this.max) {
      const first = this.waiting.values().next()
      if (first.done === true) break
      this.waiting.delete(first.value)
      first.value()
    }
  }

  /** Call `fn` once a slot is free (it must tryTake() itself); wait again to stay in line. */
  wait(fn: () => void): void {
    this.waiting.add(fn)
  }

  cancel(fn: () => void): void {
    this.waiting.delete(fn)
  }
}
