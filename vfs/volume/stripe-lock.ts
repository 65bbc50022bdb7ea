/**
 * One FIFO lock per stripe. RAID-5 parity is a function of every data unit of its stripe, so two
 * updates of one stripe must not interleave their reads and writes (each would compute parity
 * from the other's old data); updates of different stripes share nothing and run in parallel.
 */
export class StripeLocks {
  readonly #tails = new Map<number, Promise<void>>()

  /** Runs `fn` once every earlier holder of `stripe` is done; the lock is released however it ends. */
  async with<T>(stripe: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(stripe) ?? Promise.resolve()
    let release = (): void => undefined
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    const tail = prev.then(() => mine)
    this.#tails.set(stripe, tail)
    await prev
    try {
      return await fn()
    } finally {
      release()
      // The last holder leaves no entry behind, so the map holds only stripes in use.
      if (this.#tails.get(stripe) === tail) this.#tails.delete(stripe)
    }
  }
}
