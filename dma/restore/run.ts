/*
 * A restore by our backup manager (issue 16 §7): the catalog (STATE/catalog.db, completed jobs
 * ingested first) gives the plan — the chain in force at the date, and per backup the objects
 * with their tapes and offsets — and the NDMP executor carries it out against the export's agent.
 * The restore is a job of its own in the registry (STATE/jobs: record `restore`, its log), so
 * `tsnfs backup list` and `log` show it as they show backups.
 */
import { Catalog } from '../../backup/catalog/catalog.ts'
import { restorePlan } from '../../backup/catalog/plan.ts'
import type { RestorePlan } from '../../backup/catalog/plan.ts'
import type { Compression } from '../../backup/compress.ts'
import type { LogLevel, RestoreSummary } from '../../backup/types.ts'
import { DmaError } from '../errors.ts'
import { appendLog } from '../jobs/log.ts'
import type { JobRecord } from '../jobs/record.ts'
import { createJob, jobsDir, loadJob, saveJob } from '../jobs/registry.ts'
import { tapePath } from '../pool/index-file.ts'
import { parseExport } from '../schedule/export-spec.ts'
import { catalogPath, ingestJobs } from './ingest.ts'
import { NdmpRestoreExecutor } from './ndmp-executor.ts'

/** The registry name of restore jobs (ingest skips them: they hold no backup). */
export const RESTORE_JOB = 'restore'

export interface RestoreRequest {
  stateDir: string
  /** HOST[:PORT]:/PATH, as it was backed up. */
  export: string
  atNs: bigint
  /** Catalog paths ('/a/b'); empty: the whole tree (the full chain). */
  paths: readonly string[]
  /** An export path on the data agent's server; null: the original place. */
  to: string | null
  overwrite: boolean
  tapeAgent?: string
  onLog?: (level: LogLevel, message: string) => void
  signal?: AbortSignal
}

export interface RestoreOutcome {
  job: JobRecord
  plan: RestorePlan
  summary: RestoreSummary | null
  /** Stream bytes the movers sent, and the MOVER_READs of a direct access restore. */
  bytesMoved: bigint
  reads: number
}

export async function restoreExport(req: RestoreRequest): Promise<RestoreOutcome> {
  const spec = parseExport(req.export)
  if (spec.kind !== 'ndmp') throw new DmaError('DMA_BAD_EXPORT', `${spec.text}: a file: export is restored with tsnfs restore --tapes`)
  const dir = jobsDir(req.stateDir)
  const cat = Catalog.open(catalogPath(req.stateDir))
  let plan: RestorePlan
  const pools = new Map<string, string>()
  /** Jobs whose stream is compressed, by job id. */
  const compressed = new Map<string, Compression>()
  try {
    const ing = await ingestJobs(cat, req.stateDir, spec.text)
    for (const s of ing.skipped) req.onLog?.('warn', `job ${s.job} not in the catalog: ${s.why}`)
    plan = restorePlan(cat, spec.text, req.paths.length === 0 ? ['/'] : req.paths, req.atNs)
    // Each backup's tapes are in the pool its job wrote.
    for (const s of plan.steps) {
      const jobId = s.backup.jobId
      if (jobId === null) throw new DmaError('DMA_RESTORE', `backup ${s.backup.id} was not made by this manager (no job): its tapes are unknown here`)
      const rec = await loadJob(dir, jobId)
      for (const t of s.backup.tapes) pools.set(t.label, rec.pool)
      if (rec.compress !== undefined) compressed.set(jobId, rec.compress)
    }
  } finally {
    cat.close()
  }
  const head = plan.chain.backups[plan.chain.backups.length - 1]
  const job = await createJob(dir, {
    name: RESTORE_JOB,
    export: spec.text,
    pool: [...new Set(pools.values())].join(','),
    level: head?.level ?? 0,
    state: 'running',
    createdAt: new Date().toISOString(),
    tapes: [...pools.keys()],
    bytes: 0,
    files: 0,
  })
  let logging = Promise.resolve()
  const log = (level: LogLevel, message: string): void => {
    req.onLog?.(level, message)
    const line = { time: new Date().toISOString(), level, message }
    logging = logging.then(() => appendLog(dir, job.id, line)).catch(() => undefined)
  }
  const executor = new NdmpRestoreExecutor({
    stateDir: req.stateDir,
    host: spec.host,
    port: spec.port,
    filesystem: spec.filesystem,
    ...(req.tapeAgent === undefined ? {} : { tapeAgent: req.tapeAgent }),
    device: (label) => tapePath(pools.get(label) ?? '', label),
    compression: (jobId) => (jobId === null ? null : (compressed.get(jobId) ?? null)),
  })
  log('info', `restore of ${plan.full ? 'everything' : plan.selection.join(', ')} of ${spec.text} as at backup ${head?.id ?? '?'} (${plan.chain.backups.length} backup(s) in the chain) to ${req.to ?? 'the original place'}${req.overwrite ? ', overwriting' : ''}`)
  if (plan.missing.length > 0) log('warn', `${plan.missing.length} path(s) the catalog lists but no backup of the chain copied: ${plan.missing.slice(0, 20).join(', ')}`)
  let summary: RestoreSummary | null = null
  try {
    summary = await executor.execute(plan, { to: req.to, overwrite: req.overwrite, onLog: log, ...(req.signal === undefined ? {} : { signal: req.signal }) })
    job.state = 'done'
    job.files = summary.files
    log('info', `done: ${summary.files} name(s) restored, ${executor.bytesMoved} stream bytes moved, ${executor.reads} read(s)`)
  } catch (err) {
    job.state = req.signal?.aborted === true ? 'aborted' : 'failed'
    job.error = err instanceof Error ? err.message : String(err)
    log('error', `${job.state}: ${job.error}`)
  }
  job.bytes = Number(executor.bytesMoved)
  job.endedAt = new Date().toISOString()
  await saveJob(dir, job)
  await logging
  return { job, plan, summary, bytesMoved: executor.bytesMoved, reads: executor.reads }
}
