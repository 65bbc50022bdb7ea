/*
 * FSSTAT (RFC 1813 §3.3.18). An object store has no fixed capacity, so the
 * totals are a large nominal size above what is used. Used bytes come from
 * the data half's counter; used files are counted (one index scan: FSSTAT
 * is rare, and a counter row updated by every create would be the one row
 * every server writes).
 */
import type { FsStat } from '../../types.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb } from '../sql.ts'

const NOMINAL_BYTES = 2n ** 50n // 1 PiB free, always
const NOMINAL_FILES = 2n ** 40n

export async function fsStat(db: SqlDb): Promise<FsStat> {
  const r = await db.query(
    'SELECT (SELECT count(*) FROM tsnfs_node) AS files, (SELECT value FROM tsnfs_counter WHERE name = $1) AS bytes',
    [COUNTER.usedBytes],
  )
  const row = r.rows[0] ?? {}
  const files = BigInt((row['files'] as string | null) ?? '0')
  const rawBytes = BigInt((row['bytes'] as string | null) ?? '0')
  const bytes = rawBytes < 0n ? 0n : rawBytes
  return {
    totalBytes: bytes + NOMINAL_BYTES,
    freeBytes: NOMINAL_BYTES,
    availBytes: NOMINAL_BYTES,
    totalFiles: files + NOMINAL_FILES,
    freeFiles: NOMINAL_FILES,
    availFiles: NOMINAL_FILES,
  }
}
