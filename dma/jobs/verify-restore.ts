/*
 * Verify by restore (issue 16 §7, the schedule's `verify=restore`): the backup is restored from
 * its pool's tapes into a scratch directory under the manager's state directory
 * (STATE/verify-scratch/JOB-RANDOM, removed after, whatever happened), then each restored file is
 * hashed against the SHA-256 recorded at backup time (the stream's index, read in a second pass
 * over the tapes: the index ends the stream).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { backupFormat } from '../../backup/index.ts'
import type { VerifySummary } from '../../backup/verify.ts'
import { checkRestored, streamIndex } from '../../backup/verify-restore.ts'
import { tapePath } from '../pool/index-file.ts'
import { TapeStreamSource } from '../pool/tape-reader.ts'
import type { VerifyReport, VerifyTarget } from './verify.ts'
import { findBackup, reportOf } from './verify.ts'

export const SCRATCH_DIR = 'verify-scratch'

export async function verifyByRestore(stateDir: string, target: VerifyTarget, signal?: AbortSignal): Promise<VerifyReport> {
  const { pool, backup } = await findBackup(stateDir, target)
  const tapes = backup.tapes.map((l) => tapePath(pool.dir, l))
  const name = `job ${backup.job} (${backup.tapes.join(',')})`
  const scratch = join(stateDir, SCRATCH_DIR, `${backup.job}-${randomBytes(4).toString('hex')}`)
  const src = new TapeStreamSource(tapes)
  let v: VerifySummary | null = null
  let error: string | null = null
  try {
    await mkdir(scratch, { recursive: true, mode: 0o700 })
    await backupFormat.readBackup(src, name, { kind: 'host', dir: scratch }, { overwrite: false, applyDeletions: false, ...(signal === undefined ? {} : { signal }) })
    // The restore stops at the tar end, before the index: the tape is let go (its lock with it) before the second pass opens it again.
    await src.close()
    const again = new TapeStreamSource(tapes)
    let rows
    try {
      rows = await streamIndex(again, name, signal)
    } finally {
      await again.close()
    }
    const c = await checkRestored(scratch, rows ?? [], signal)
    v = { files: c.files, bytes: c.bytes, mismatched: c.mismatches.map((m) => m.path), mismatches: c.mismatches, missing: c.missing, unindexed: [], changedDuringBackup: (rows ?? []).filter((r) => r.changed).map((r) => r.path), indexed: rows !== null }
  } catch (err) {
    if (signal?.aborted === true) throw err
    error = err instanceof Error ? err.message : String(err)
  } finally {
    await src.close()
    await rm(scratch, { recursive: true, force: true })
  }
  return reportOf('restore', backup, pool, src, v, error)
}
