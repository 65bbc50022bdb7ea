/*
 * A counter row (tsnfs_counter) this server moves by a local delta it
 * applies about once a second, in one statement. Updating the row in every
 * create's statement would make it the one row every create of every server
 * writes: under PostgreSQL each create would wait for the previous one's
 * commit, under SERIALIZABLE (CockroachDB) concurrent creates would fail
 * with 40001 and retry. JuiceFS batches its usage counters the same way.
 *
 * Bound: a change is in the row at most one tick (TICK_MS) plus one
 * statement after the reply that made it, while the database answers; a
 * failed update keeps the delta for the next tick. A server that dies loses
 * at most its last tick's delta; `tsnfs cluster fsck` reports the
 * difference (inode-count-mismatch).
 */
import type { SqlDb } from '../sql.ts'

export const TICK_MS = 1000

export class CounterDelta {
  #delta = 0
  #tail: Promise<void> = Promise.resolve()
  readonly #timer: NodeJS.Timeout
  readonly #db: SqlDb
  readonly #name: string

  constructor(db: SqlDb, name: string, log?: (msg: string) => void) {
    this.#db = db
    this.#name = name
    this.#timer = setInterval(() => {
      if (this.#delta !== 0) this.flush().catch((err: unknown) => log?.(`cluster: counter ${name} not updated (${(err as Error).message}); kept for the next try`))
    }, TICK_MS)
    this.#timer.unref()
  }

  add(n: number): void {
    this.#delta += n
  }

  /** Apply the delta; calls queue, so when it resolves every change before the call is in the row. */
  flush(): Promise<void> {
    const run = this.#tail.then(() => this.#apply())
    this.#tail = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.flush()
  }

  async #apply(): Promise<void> {
    const d = this.#delta
    if (d === 0) return
    this.#delta = 0
    try {
      await this.#db.query('UPDATE tsnfs_counter SET value = value + $2 WHERE name = $1', [this.#name, d])
    } catch (err) {
      this.#delta += d
      throw err
    }
  }
}
