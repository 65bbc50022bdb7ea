/*
 * Inode and slice ids handed out in batches (issue 17: one database round
 * trip per BATCH ids, not per create). Ids never return: a batch a server
 * did not use when it stopped is simply skipped, which a 64-bit space affords.
 */
import type { SqlDb } from './sql.ts'

export class IdBatch {
  private next = 0n
  private end = 0n
  private refill: Promise<void> | null = null
  private readonly db: SqlDb
  private readonly counter: string
  private readonly batch: number

  constructor(db: SqlDb, counter: string, batch = 1000) {
    this.db = db
    this.counter = counter
    this.batch = batch
  }

  async take(): Promise<bigint> {
    while (this.next >= this.end) {
      this.refill ??= this.fetch().finally(() => { this.refill = null })
      await this.refill
    }
    return this.next++
  }

  private async fetch(): Promise<void> {
    const r = await this.db.query(
      'UPDATE tsnfs_counter SET value = value + $2 WHERE name = $1 RETURNING value',
      [this.counter, this.batch],
    )
    const row = r.rows[0]
    if (row === undefined) throw new Error(`counter ${this.counter} is missing: run tsnfs cluster init`)
    const end = BigInt(row['value'] as string)
    this.next = end - BigInt(this.batch)
    this.end = end
  }
}
