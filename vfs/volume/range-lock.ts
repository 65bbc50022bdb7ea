interface Entry {
  readonly offset: number
  readonly end: number
  readonly exclusive: boolean
  readonly done: Promise<void>
}

/**
 * Shared/exclusive locks on byte ranges, granted first come first served. A mirror's client
 * writes take shared locks (they may overlap each other: the device contract leaves their order
 * undefined anyway); a rebuild, resync, scrub or read-repair step takes an exclusive one, so it
 * never reads a range from the good leg while a client write to it is in flight and then writes
 * those stale bytes over the client's (the classic rebuild race).
 *
 * An acquirer waits for every earlier entry that overlaps it and conflicts, held or still
 * waiting, so an exclusive waiter is not starved by a stream of shared ones, and since waits
 * only ever point to earlier entries there is no deadlock.
 */
export class RangeLock {
  #entries: Entry[] = []

  /** Resolves with the release function once the range is yours. */
  async acquire(offset: number, length: number, exclusive: boolean): Promise<() => void> {
    const end = offset + length
    const conflicts = this.#entries.filter((e) => e.offset < end && offset < e.end && (e.exclusive || exclusive)).map((e) => e.done)
    let release = (): void => undefined
    const done = new Promise<void>((resolve) => {
      release = resolve
    })
    const entry: Entry = { offset, end, exclusive, done }
    this.#entries.push(entry)
    await Promise.all(conflicts)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#entries = this.#entries.filter((e) => e !== entry)
      release()
    }
  }

  /** Runs `fn` holding the range. */
  async with<T>(offset: number, length: number, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(offset, length, exclusive)
    try {
      return await fn()
    } finally {
      release()
    }
  }

  /** Entries held or waiting (for tests). */
  get size(): number {
    return this.#entries.length
  }
}
