/*
 * Garbage collection (`tsnfs cluster gc`): what the normal paths leave when a
 * server dies at the wrong moment. Two kinds:
 *  - slices at refs 0 whose blocks were never deleted (the server died after
 *    the commit that dropped them): blocks, then rows, go;
 *  - objects whose slice id has neither a tsnfs_slice_ref nor a
 *    tsnfs_pending_slice row (a crash mid-abandon, or a reclaimed session's
 *    stragglers), older than `minAgeMs`.
 * Memory is bounded: the listing is streamed (the store pages it) and
 * settled `batch` keys at a time against the database (one query per batch
 * for the ids in it), so gc holds one batch whatever the store holds.
 * Objects are listed BEFORE the database is asked about them: a slice's
 * pending row commits before its first block is put, and the attach moves it
 * to slice_ref atomically, so a block we listed always has one of the two
 * rows if it is live. `minAgeMs` is a second guard (clock skew, stores that
 * list writes still in flight).
 */
import type { ObjectStore } from '../object-store.ts'
import type { SqlDb } from '../sql.ts'
import { BLOCK_PREFIX, parseBlockKey } from './keys.ts'
import { DEFAULT_LAYOUT } from './layout.ts'
import { reapZeroRefs } from './refs.ts'
import { abandonSlices } from './upload.ts'

export interface GcOptions {
  /** Only objects older than this are deleted (default 1 hour). */
  minAgeMs?: number
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean
  blockSize?: number
  /** Clock for tests. */
  now?: number
  /** Listed keys settled per database query (default 1000). */
  batch?: number
}

export interface GcReport {
  /** Objects listed under chunks/. */
  scanned: number
  /** Unreferenced objects deleted (or, dry run, that would be). */
  orphans: number
  orphanBytes: number
  /** Unreferenced but younger than minAgeMs: left. */
  young: number
  /** Keys under chunks/ not in the block layout: left alone. */
  foreign: number
  /** Pending slices of sessions that are gone, reclaimed. */
  abandonedPending: number
  /** Slices at refs 0 whose blocks and rows were removed. */
  zeroRefSlices: number
  zeroRefBytes: number
  dryRun: boolean
}

const BATCH = 1000

export async function collectGarbage(db: SqlDb, store: ObjectStore, opts: GcOptions = {}): Promise<GcReport> {
  const minAge = opts.minAgeMs ?? 3_600_000
  const blockSize = opts.blockSize ?? DEFAULT_LAYOUT.blockSize
  const dryRun = opts.dryRun === true
  const report: GcReport = { scanned: 0, orphans: 0, orphanBytes: 0, young: 0, foreign: 0, abandonedPending: 0, zeroRefSlices: 0, zeroRefBytes: 0, dryRun }
  const now = opts.now ?? Date.now()
  const per = Math.max(1, opts.batch ?? BATCH)

  // Pending rows of dead sessions, a page at a time in id order (abandoning one deletes its row).
  let afterId = '-1'
  for (;;) {
    const ab = await db.query(
      `SELECT p.id, p.size FROM tsnfs_pending_slice p
       WHERE p.id > $2 AND p.created < $1 AND NOT EXISTS (SELECT 1 FROM tsnfs_session s WHERE s.sid = p.sid) ORDER BY p.id LIMIT $3`,
      [now - minAge, afterId, per],
    )
    const abandoned = ab.rows.map((row) => ({ id: BigInt(row['id'] as string), size: Number(row['size']) }))
    report.abandonedPending += abandoned.length
    if (!dryRun && abandoned.length > 0) await abandonSlices(db, store, abandoned, blockSize)
    const last = abandoned[abandoned.length - 1]
    if (last === undefined || abandoned.length < per) break
    afterId = String(last.id)
  }

  if (dryRun) {
    const r = await db.query('SELECT count(*) AS n, COALESCE(sum(size), 0) AS b FROM tsnfs_slice_ref WHERE refs <= 0')
    report.zeroRefSlices = Number(r.rows[0]?.['n'])
    report.zeroRefBytes = Number(r.rows[0]?.['b'])
  } else {
    for (;;) {
      const r = await reapZeroRefs(db, store, blockSize, per)
      report.zeroRefSlices += r.slices
      report.zeroRefBytes += r.bytes
      if (r.slices < per) break
    }
  }

  let batch: { key: string; id: bigint; size: number; old: boolean }[] = []
  const settle = async (): Promise<void> => {
    if (batch.length === 0) return
    const ids = [...new Set(batch.map((b) => b.id))]
    const live = await liveIds(db, ids)
    const doomed: string[] = []
    for (const b of batch) {
      if (live.has(b.id)) continue
      if (!b.old) {
        report.young++
        continue
      }
      report.orphans++
      report.orphanBytes += b.size
      doomed.push(b.key)
    }
    if (!dryRun && doomed.length > 0) await store.delete(doomed)
    batch = []
  }
  for await (const o of store.list(BLOCK_PREFIX)) {
    report.scanned++
    const name = parseBlockKey(o.key)
    if (name === null) {
      report.foreign++
      continue
    }
    batch.push({ key: o.key, id: name.id, size: o.size, old: now - o.mtimeMs >= minAge })
    if (batch.length >= per) await settle()
  }
  await settle()
  return report
}

/** Which of `ids` have a slice_ref row (any refs: those at 0 are reaped above) or a pending row. */
export async function liveIds(db: SqlDb, ids: readonly bigint[]): Promise<Set<bigint>> {
  const live = new Set<bigint>()
  for (let i = 0; i < ids.length; i += BATCH) {
    const part = ids.slice(i, i + BATCH)
    const list = part.map((_, j) => `$${j + 1}`).join(', ')
    const r = await db.query(
      `SELECT id FROM tsnfs_slice_ref WHERE id IN (${list}) UNION SELECT id FROM tsnfs_pending_slice WHERE id IN (${list})`,
      part,
    )
    for (const row of r.rows) live.add(BigInt(row['id'] as string))
  }
  return live
}
