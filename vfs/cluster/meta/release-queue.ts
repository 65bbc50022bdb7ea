/*
 * Files whose last link went, released after the reply (REMOVE, RENAME over
 * a file). The delfile row committed with the change already makes this
 * crash-safe (any server's sweep releases what a dead one left, meta/delfile.ts),
 * so nothing here is on the NFS reply's path. Inodes are gathered and released
 * in batches, one transaction per batch, so a burst of removals costs a few
 * statements per batch plus the data half's release per file, instead of a
 * whole transaction per file. A batch gathers while changes that may free more
 * files are still running (`busy`: the rest of a burst of REMOVEs, whose replies
 * come back over several database round trips), up to GATHER_MS: on a loaded
 * machine those round trips spread out, and a batch that went at the first
 * reply left the rest to batches of a few each (CI: 3.2 round trips per file
 * instead of ~2).
 */
import type { FileData } from '../data/types.ts'
import type { SqlDb } from '../sql.ts'
import { releaseDeletedMany } from './delfile.ts'

/** Inodes per transaction: bounds its length and the statement's parameter. */
export const RELEASE_BATCH = 64
/** The longest a batch waits for running changes to add to it (off the reply path: nobody waits on a release but close). */
export const GATHER_MS = 20

export class ReleaseQueue {
  readonly #db: SqlDb
  readonly #data: FileData
  readonly #log: ((msg: string) => void) | undefined
  readonly #busy: () => boolean
  #queued: bigint[] = []
  #running: Promise<void> | undefined

  constructor(db: SqlDb, data: FileData, log?: (msg: string) => void, busy: () => boolean = () => false) {
    this.#db = db
    this.#data = data
    this.#log = log
    this.#busy = busy
  }

  add(inode: bigint): void {
    this.#queued.push(inode)
    this.#running ??= this.#drain()
  }

  /** Resolves when everything queued so far has been released (or left queued in the database after an error). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running
  }

  async #drain(): Promise<void> {
    // Let the replies of this turn go out and their removals queue up first.
    await new Promise((resolve) => setImmediate(resolve))
    try {
      while (this.#queued.length > 0) {
        const until = performance.now() + GATHER_MS
        while (this.#queued.length < RELEASE_BATCH && this.#busy() && performance.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
        const batch = this.#queued.slice(0, RELEASE_BATCH)
        this.#queued = this.#queued.slice(batch.length)
        try {
          await releaseDeletedMany(this.#db, this.#data, batch)
        } catch (err) {
          // The delfile rows stay: the sweep of stale sessions and `tsnfs cluster gc` release them later.
          this.#log?.(`cluster: releasing ${batch.length} inodes failed (left queued): ${(err as Error).message}`)
        }
      }
    } finally {
      this.#running = undefined
    }
  }
}
