/*
 * File-data writes on their way to the device after their WRITE released the engine's lock.
 *
 * A WRITE allocates and records its blocks (extents, size, times) under the exclusive lock, then
 * writes the data blocks with the lock released, so the writes of several requests reach the
 * device together. From the moment the lock is released until the data is written, the metadata
 * already points at blocks whose contents are not there yet: a READ of those blocks would return
 * whatever they held before (another file's old data), a second write into the same block would
 * race the first's read-modify-write, and a truncate's zeroing of a partial block would be undone
 * by the late data. So every such write is registered here (by file and block range) before the
 * lock is released, and those operations wait for the overlapping ones first. The data phase
 * needs no lock, so waiting for it while holding the lock cannot deadlock.
 *
 * Crash safety needs nothing from here: the write's journal handle stays open until its data is
 * written, and a transaction commits only once all its handles have ended (ordered mode, txn.ts).
 */

/** One write's data phase: blocks [first, last] of file `ino`. */
export interface DataFlight {
  readonly ino: number
  readonly first: number
  readonly last: number
  readonly done: Promise<void>
}

interface Entry extends DataFlight {
  end: () => void
}

export class DataFlights {
  readonly #byIno = new Map<number, Set<Entry>>()
  #count = 0
  /** The most data phases in flight at once since made (a counter for tests and benches). */
  maxInFlight = 0

  /** Writes in their data phase now. */
  get size(): number {
    return this.#count
  }

  /** Register a data phase; the caller must call `end` once its device writes settle (ok or not). */
  start(ino: number, first: number, last: number): DataFlight {
    let end = (): void => undefined
    const done = new Promise<void>((resolve) => (end = resolve))
    const entry: Entry = { ino, first, last, done, end }
    let set = this.#byIno.get(ino)
    if (set === undefined) this.#byIno.set(ino, (set = new Set()))
    set.add(entry)
    this.#count++
    this.maxInFlight = Math.max(this.maxInFlight, this.#count)
    return entry
  }

  end(flight: DataFlight): void {
    const entry = flight as Entry
    const set = this.#byIno.get(flight.ino)
    if (set?.delete(entry) !== true) return
    if (set.size === 0) this.#byIno.delete(flight.ino)
    this.#count--
    entry.end()
  }

  /**
   * Settles once no data phase of `ino` overlapping blocks [first, last] is left (all of the
   * file's when first/last are omitted); undefined when there is none now, so callers pay no
   * await in the common case.
   */
  settled(ino: number, first = 0, last = Number.MAX_SAFE_INTEGER): Promise<void> | undefined {
    if (this.#overlapping(ino, first, last).length === 0) return undefined
    return this.#waitAll(ino, first, last)
  }

  async #waitAll(ino: number, first: number, last: number): Promise<void> {
    // Loop: a write that was waited for may have been followed by another one by now.
    for (let hits = this.#overlapping(ino, first, last); hits.length > 0; hits = this.#overlapping(ino, first, last)) {
      await Promise.all(hits.map((h) => h.done))
    }
  }

  #overlapping(ino: number, first: number, last: number): DataFlight[] {
    const set = this.#byIno.get(ino)
    if (set === undefined) return []
    return [...set].filter((e) => e.first <= last && first <= e.last)
  }
}
