/*
 * tsnfs backup verify (issue 16 §7): rereads one backup from its pool's tape files on this host
 * and checks every file against the SHA-256 recorded when it was read for the backup (the
 * stream's own index, backup/index-record.ts). The result goes into the job's log and record
 * (when the job is in this state directory), so `list` shows which backups were verified.
 */
import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { ByteSource } from '../../backup/types.ts'
import type { VerifySummary } from '../../backup/verify.ts'
import { verifyBackup } from '../../backup/verify.ts'
import { DmaError } from '../errors.ts'
import type { PoolBackup } from '../pool/index-file.ts'
import { tapePath } from '../pool/index-file.ts'
import { Pool } from '../pool/pool.ts'
import type { TapeDamage } from '../pool/tape-reader.ts'
import { TapeStreamSource } from '../pool/tape-reader.ts'
import { NdmpTapeSource } from '../pool/ndmp-tape-source.ts'
import { ndmpLoginFor } from '../ndmp/auth.ts'
import { hostPort } from '../schedule/export-spec.ts'
import { appendLog } from './log.ts'
import { verifyByRestore } from './verify-restore.ts'
import type { JobRecord } from './record.ts'
import { jobsDir, loadJob, saveJob } from './registry.ts'

export type VerifyMethod = 'read' | 'restore'

/** Which backup: a job's (its pool from the job record unless given), or the newest on a tape label. */
export interface VerifyTarget {
  job?: string
  label?: string
  pool?: string
  /**
   * Read the tapes through this NDMP tape agent (HOST[:PORT]). Without it: the pool's tape files
   * on this host, or, when they are not here, through the tape agent the job recorded.
   */
  tapeAgent?: string
}

/** What a verify reads from: bytes handed out and the damaged records met. */
export interface StreamSource extends ByteSource {
  readonly bytes: bigint
  readonly damage: TapeDamage[]
  close(): Promise<void>
}

/** What a verify found; JSON-safe (byte counts as strings), kept in the job record as `verify`. */
export interface VerifyReport {
  /** read: the stream's bytes hashed; restore: restored into a scratch directory, the files hashed there. */
  method: VerifyMethod
  job: string
  pool: string
  tapes: string[]
  at: string
  /** Every file matched, nothing missing, no damaged record, the stream read to its end. */
  ok: boolean
  files: number
  /** File data bytes hashed, and stream bytes read from the tapes. */
  bytes: string
  streamBytes: string
  mismatches: Array<{ path: string; offset: string; size: string }>
  missing: string[]
  unindexed: string[]
  changedDuringBackup: string[]
  /** False: the stream carries no index of ours (a file: export of another writer), nothing to check against. */
  indexed: boolean
  damage: TapeDamage[]
  /** The stream could not be read to its end (the message names the tape or stream and the offset). */
  error?: string
}

export async function findBackup(stateDir: string, target: VerifyTarget): Promise<{ pool: Pool; backup: PoolBackup }> {
  let poolDir = target.pool
  if (target.job !== undefined && poolDir === undefined) poolDir = (await loadJob(jobsDir(stateDir), target.job)).pool
  if (poolDir === undefined) throw new DmaError('DMA_CONTROL', 'verify --label needs --pool')
  const pool = await Pool.open(poolDir)
  const backups = (await pool.index()).backups
  const backup =
    target.job !== undefined
      ? backups.find((b) => b.job === target.job)
      : backups.filter((b) => target.label !== undefined && b.tapes.includes(target.label)).at(-1)
  if (backup === undefined) {
    const what = target.job !== undefined ? `job ${target.job}` : `tape ${target.label ?? ''}`
    throw new DmaError('DMA_NO_JOB', `pool ${pool.dir} holds no backup of ${what}`)
  }
  if (backup.status === 'writing') throw new DmaError('DMA_JOB_STATE', `job ${backup.job} is still writing its backup`)
  if (backup.tapes.length === 0) throw new DmaError('DMA_JOB_STATE', `job ${backup.job} wrote no tape`)
  return { pool, backup }
}

export function reportOf(method: VerifyMethod, backup: PoolBackup, pool: Pool, src: StreamSource, v: VerifySummary | null, error: string | null): VerifyReport {
  const r: VerifyReport = {
    method,
    job: backup.job,
    pool: pool.dir,
    tapes: [...backup.tapes],
    at: new Date().toISOString(),
    ok: false,
    files: v?.files ?? 0,
    bytes: String(v?.bytes ?? 0n),
    streamBytes: String(src.bytes),
    mismatches: (v?.mismatches ?? []).map((m) => ({ path: m.path, offset: String(m.offset), size: String(m.size) })),
    missing: v?.missing ?? [],
    unindexed: v?.unindexed ?? [],
    changedDuringBackup: v?.changedDuringBackup ?? [],
    indexed: v?.indexed ?? false,
    damage: src.damage,
    ...(error === null ? {} : { error }),
  }
  r.ok = error === null && r.indexed && r.mismatches.length === 0 && r.missing.length === 0 && r.damage.length === 0
  return r
}

/** One line for the log and the CLI. */
export function verifyLine(r: VerifyReport): string {
  const how = r.method === 'restore' ? 'verify by restore' : 'verify'
  if (r.ok) return `${how} OK: ${r.files} files, ${r.bytes} bytes match their recorded SHA-256 (${r.streamBytes} stream bytes on ${r.tapes.join(', ')})`
  const why = [
    r.error ?? '',
    r.indexed || r.error !== undefined ? '' : 'the stream carries no index of checksums',
    r.mismatches.length === 0 ? '' : `${r.mismatches.length} file(s) differ: ${r.mismatches.slice(0, 5).map((m) => `${m.path} (at stream offset ${m.offset})`).join(', ')}`,
    r.missing.length === 0 ? '' : `${r.missing.length} file(s) missing: ${r.missing.slice(0, 5).join(', ')}`,
    r.damage.length === 0 ? '' : `${r.damage.length} damaged record(s): ${r.damage.slice(0, 3).map((d) => `${d.tape} at byte ${d.offset}`).join(', ')}`,
  ].filter((x) => x !== '')
  return `${how} FAILED: ${why.join('; ')}`
}

/** Rereads the backup and checks it; a damaged stream is a failed report, not a throw. */
export async function verifyPoolBackup(stateDir: string, target: VerifyTarget, signal?: AbortSignal): Promise<VerifyReport> {
  const { pool, backup } = await findBackup(stateDir, target)
  const src = await sourceFor(stateDir, target, pool, backup)
  let v: VerifySummary | null = null
  let error: string | null = null
  try {
    v = await verifyBackup(src, `job ${backup.job} (${backup.tapes.join(',')})`, signal === undefined ? {} : { signal })
  } catch (err) {
    if (signal?.aborted === true) throw err
    error = err instanceof Error ? err.message : String(err)
  } finally {
    await src.close()
  }
  return reportOf('read', backup, pool, src, v, error)
}

/**
 * The pool's tape files on this host, or the tape agent's reading of them: asked for (--tape), or
 * the job's recorded tape agent when its first tape file is not on this host (the agent's host
 * keeps the pool's tapes; this one keeps pool.json).
 */
async function sourceFor(stateDir: string, target: VerifyTarget, pool: Pool, backup: PoolBackup): Promise<StreamSource> {
  const devices = backup.tapes.map((l) => tapePath(pool.dir, l))
  let agent = target.tapeAgent
  if (agent === undefined && !(await exists(devices[0] ?? ''))) {
    const job = await loadJob(jobsDir(stateDir), backup.job).catch(() => null)
    if (job !== null && resolve(job.pool) === pool.dir) agent = job.tapeAgent
  }
  if (agent === undefined) return new TapeStreamSource(devices)
  const { host, port } = hostPort(agent)
  const login = await ndmpLoginFor(stateDir, host, port)
  return new NdmpTapeSource({ host, port, auth: login.auth, ...(login.version === undefined ? {} : { version: login.version }), devices })
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}

/** Puts the report into the job's log and record, when the job is one of this state directory's. */
export async function recordVerify(stateDir: string, report: VerifyReport): Promise<void> {
  const dir = jobsDir(stateDir)
  let job: JobRecord
  try {
    job = await loadJob(dir, report.job)
  } catch (err) {
    if (err instanceof DmaError && err.code === 'DMA_NO_JOB') return
    throw err
  }
  if (resolve(job.pool) !== report.pool) return
  await appendLog(dir, job.id, { time: report.at, level: report.ok ? 'info' : 'error', message: verifyLine(report) })
  await saveJob(dir, { ...job, verify: report })
}

/** Verifies and records (the manager's op and the CLI without a manager). */
export async function verifyAndRecord(stateDir: string, target: VerifyTarget, signal?: AbortSignal, method: VerifyMethod = 'read'): Promise<VerifyReport> {
  const report = method === 'restore' ? await verifyByRestore(stateDir, target, signal) : await verifyPoolBackup(stateDir, target, signal)
  await recordVerify(stateDir, report)
  return report
}
