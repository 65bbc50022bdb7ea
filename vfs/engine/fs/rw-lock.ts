/**
 * Readers share, a writer excludes. Operations that change the tree hold it exclusively while
 * they change shared buffers (a change spans awaits: a directory split reads blocks midway), so a
 * concurrent lookup never sees half of one; they release it before waiting for their commit, so
 * durability waits overlap and share commits. Writers queue in order and a waiting writer holds
 * off new readers, so a stream of reads cannot starve a change.
 */
export class RwLock {
  #readers = 0
  #writer = false
  readonly #queue: Array<{ write: boolean; wake: () => void }> = []
  #writersQueued = 0

  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#queue.length > 0) await new Promise<void>((wake) => this.#queue.push({ write: false, wake }))
    else this.#readers++
    try {
      return await fn()
    } finally {
      this.#readers--
      this.#next()
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#readers > 0 || this.#queue.length > 0) {
      this.#writersQueued++
      await new Promise<void>((wake) => this.#queue.push({ write: true, wake }))
    }
    else this.#writer = true
    try {
      return await fn()
    } finally {
      this.#writer = false
      this.#next()
    }
  }

  /** No writer holds the lock and nobody waits: a reader would get it at once. */
  get idleForReaders(): boolean {
    return !this.#writer && this.#queue.length === 0
  }

  /** Writers queued behind the current holder: a change that sees some leaves its commit to them. */
  get writersWaiting(): number {
    return this.#writersQueued
  }

  /** Hand the lock on: the next writer alone, or every reader up to the next writer. */
  #next(): void {
    if (this.#writer || this.#readers > 0) return
    const first = this.#queue[0]
    if (first === undefined) return
    if (first.write) {
      this.#queue.shift()
      this.#writersQueued--
      this.#writer = true
      first.wake()
      return
    }
    while (this.#queue[0] !== undefined && !this.#queue[0].write) {
      const r = this.#queue.shift()
      this.#readers++
      r?.wake()
    }
  }
}
