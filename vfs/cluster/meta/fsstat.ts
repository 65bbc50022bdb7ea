/*
 * FSSTAT (RFC 1813 §3.3.18). An object store has no fixed capacity, so the
 * totals are a large nominal size above what is used. Used bytes and used
 * files are counter rows (COUNTER.usedBytes, COUNTER.usedInodes): one point
 * read, whatever the size of the file system. Each server applies its
 * creates, directory removals and attached bytes to them about once a
 * second (meta/counter-delta.ts, data/attach.ts), and releases in the
 * releasing transaction, so FSSTAT on any server lags a change made on
 * another by at most about one second.
 */
import type { FsStat } from '../../types.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb } from '../sql.ts'

const NOMINAL_BYTES = 2n ** 50n // 1 PiB free, always
const NOMINAL_FILES = 2n ** 40n

export async function fsStat(db: SqlDb): Promise<FsStat> {
  const r = await db.query('SELECT name, value FROM tsnfs_counter WHERE name IN ($1, $2)', [COUNTER.usedBytes, COUNTER.usedInodes])
  const value = (name: string): bigint => {
    const v = r.rows.find((row) => row['name'] === name)?.['value'] as string | undefined
    const n = BigInt(v ?? '0')
    // A lost delta (a server died within its tick) could leave a counter below zero: report none.
    return n < 0n ? 0n : n
  }
  const bytes = value(COUNTER.usedBytes)
  const files = value(COUNTER.usedInodes)
  return {
    totalBytes: bytes + NOMINAL_BYTES,
    freeBytes: NOMINAL_BYTES,
    availBytes: NOMINAL_BYTES,
    totalFiles: files + NOMINAL_FILES,
    freeFiles: NOMINAL_FILES,
    availFiles: NOMINAL_FILES,
  }
}
