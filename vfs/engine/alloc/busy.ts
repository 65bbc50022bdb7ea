/*
 * Blocks freed by a transaction that has not committed yet. The bitmap that transaction writes
 * already shows them free, but until it is durable a crash would bring back the old owner, which
 * would then share them with a new one (txn.ts). So the allocator skips them until the freeing
 * transaction's afterCommit, as ext4's mballoc does with its per-group busy extents.
 */

export class BusyBlocks {
  /** Per group: [start, end) ranges of absolute block numbers, in the order they were freed. */
  readonly #byGroup = new Map<number, Array<[number, number]>>()
  /** Busy blocks per group, kept so group choice costs no walk over the ranges. */
  readonly #counts = new Map<number, number>()
  #total = 0

  get total(): number {
    return this.#total
  }

  inGroup(g: number): number {
    return this.#counts.get(g) ?? 0
  }

  add(g: number, start: number, end: number): void {
    const list = this.#byGroup.get(g) ?? []
    list.push([start, end])
    this.#byGroup.set(g, list)
    this.#counts.set(g, this.inGroup(g) + end - start)
    this.#total += end - start
  }

  /** Forget one range added before (the transaction that freed it is durable). */
  remove(g: number, start: number, end: number): void {
    const list = this.#byGroup.get(g)
    const i = list?.findIndex(([s, e]) => s === start && e === end) ?? -1
    if (list === undefined || i < 0) return
    list.splice(i, 1)
    if (list.length === 0) {
      this.#byGroup.delete(g)
      this.#counts.delete(g)
    } else this.#counts.set(g, this.inGroup(g) - (end - start))
    this.#total -= end - start
  }

  ranges(g: number): ReadonlyArray<readonly [number, number]> {
    return this.#byGroup.get(g) ?? []
  }

  /** Is any block of [start, end) busy? */
  overlaps(g: number, start: number, end: number): boolean {
    for (const [s, e] of this.#byGroup.get(g) ?? []) if (s < end && start < e) return true
    return false
  }
}
