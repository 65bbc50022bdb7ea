/*
 * Directory entries with stable READDIR cookies (RFC 1813 §3.3.16).
 *
 * Each entry gets a per-directory sequence number when it is inserted; that
 * number is its cookie and is never reused. Entries are also kept in an array
 * ordered by sequence number, with lazy deletion: a removed entry is only
 * marked dead and the array is compacted once half of it is dead. Resuming a
 * listing is a binary search for the first sequence number after the cookie,
 * so paging through a large directory is O(n log n) in total, not O(n^2), and
 * a listing resumed while the directory changes neither repeats nor skips a
 * surviving entry.
 */

/** Cookies 1 and 2 are `.` and `..`; entries start here. */
export const FIRST_ENTRY_SEQ = 3

export interface DirSlot {
  /** The name bytes, one code unit each (nameKey): a string, not a Buffer, so that no entry keeps a slice of Node's buffer pool alive. */
  readonly key: string
  readonly id: bigint
  readonly seq: number
  dead: boolean
}

/** A lossless string key for name bytes (latin1 maps each byte to one code unit). */
export function nameKey(name: Buffer): string {
  return name.toString('latin1')
}

export class Directory {
  readonly #byKey = new Map<string, DirSlot>()
  #order: DirSlot[] = []
  #dead = 0
  #nextSeq = FIRST_ENTRY_SEQ

  get count(): number {
    return this.#byKey.size
  }

  get(key: string): DirSlot | undefined {
    return this.#byKey.get(key)
  }

  /** Inserts a new entry (nothing of `name` is kept but its key). The key must not exist. */
  add(name: Buffer, id: bigint): DirSlot {
    const slot: DirSlot = { key: nameKey(name), id, seq: this.#nextSeq++, dead: false }
    this.#byKey.set(slot.key, slot)
    this.#order.push(slot)
    return slot
  }

  delete(key: string): DirSlot | undefined {
    const slot = this.#byKey.get(key)
    if (slot === undefined) return undefined
    this.#byKey.delete(key)
    slot.dead = true
    this.#dead++
    if (this.#dead > 64 && this.#dead * 2 > this.#order.length) {
      this.#order = this.#order.filter(s => !s.dead)
      this.#dead = 0
    }
    return slot
  }

  /**
   * Up to `max` live entries whose sequence number is greater than `afterSeq`,
   * and whether any live entry follows the last one returned.
   */
  after(afterSeq: number, max: number): { slots: DirSlot[]; more: boolean } {
    const order = this.#order
    let lo = 0
    let hi = order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((order[mid]?.seq ?? Infinity) <= afterSeq) lo = mid + 1
      else hi = mid
    }
    const slots: DirSlot[] = []
    let i = lo
    for (; i < order.length && slots.length < max; i++) {
      const slot = order[i]
      if (slot !== undefined && !slot.dead) slots.push(slot)
    }
    while (i < order.length && order[i]?.dead === true) i++
    return { slots, more: i < order.length }
  }
}
