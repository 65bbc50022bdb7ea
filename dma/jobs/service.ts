/*
 * The job service: starts backups (manual or scheduled), keeps their records and logs, pauses a
 * job at the end of a tape until it is continued, aborts. One service owns a state directory at
 * a time (the control socket's claim makes sure); records a dead service left running or
 * paused are marked failed when the next one opens.
 */
import { mkdir } from 'node:fs/promises'
import type { Compression } from '../../backup/compress.ts'
import type { LogLevel } from '../../backup/types.ts'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { DmaError } from '../errors.ts'
import type { DriverFor, HistoryEntry, JobContext, TapeAccess, TapeHandle } from '../drivers/driver.ts'
import { Pool } from '../pool/pool.ts'
import { catalogPath, ingestJobs } from '../restore/ingest.ts'
import type { ExportSpec } from '../schedule/export-spec.ts'
import { appendLog, jobRecords } from './log.ts'
import type { JobRecord } from './record.ts'
import { ACTIVE_STATES } from './record.ts'
import { appendHistory, createJob, jobsDir, loadJob, saveJob } from './registry.ts'
import type { VerifyMethod } from './verify.ts'
import { verifyLine, verifyPoolBackup } from './verify.ts'
import { verifyByRestore } from './verify-restore.ts'

export interface JobRequest {
  name: string
  spec: ExportSpec
  pool: string
  level: number
  exclude?: readonly string[]
  tapeAgent?: string
  scheduledFor?: Date
  /** After a backup that ends done: verify it (read: its stream's checksums; restore: into a scratch directory). */
  verify?: VerifyMethod
  /** COMPRESS for the data agent: the stream on tape is gzip or brotli. */
  compress?: Compression
}

/** A job the schedule will run: what `list` shows besides the registry. */
export interface ScheduledJob {
  name: string
  export: string
  pool: string
  next: string | null
  level: number | null
}

interface LiveJob {
  record: JobRecord
  abort: AbortController
  done: Promise<JobRecord>
  /** Set while paused: resumes the job (or fails it, on abort). */
  waiter?: { resume: () => void; fail: (err: Error) => void }
  /** Record writes in order. */
  saving: Promise<void>
  /** Log lines in order. */
  logging: Promise<void>
}

export class DmaService {
  readonly stateDir: string
  private readonly dir: string
  private readonly drivers: DriverFor
  private readonly live = new Map<string, LiveJob>()
  /** The scheduler's view (set by it), for `list`. */
  scheduled: () => ScheduledJob[] = () => []
  /** Called with each record as it is saved (a foreground run prints its pauses). */
  watch: ((job: JobRecord) => void) | undefined

  private constructor(stateDir: string, drivers: DriverFor) {
    this.stateDir = stateDir
    this.dir = jobsDir(stateDir)
    this.drivers = drivers
  }

  static async open(stateDir: string, drivers: DriverFor): Promise<DmaService> {
    const s = new DmaService(stateDir, drivers)
    await mkdir(s.dir, { recursive: true, mode: 0o700 })
    for (const job of await jobRecords(s.dir)) {
      if (!ACTIVE_STATES.has(job.state)) continue
      // A manager stopped (or died) under it: the job cannot continue (its agents' sessions are gone).
      const why = 'the backup manager stopped while the job ran'
      Object.assign(job, { state: 'failed', error: why, endedAt: new Date().toISOString() })
      delete job.needs
      await saveJob(s.dir, job)
      await appendLog(s.dir, job.id, { time: job.endedAt ?? '', level: 'error', message: why })
      await Pool.open(job.pool).then((p) => p.endBackup(job.id, 'failed', job.bytes)).catch(() => undefined)
    }
    return s
  }

  /** Starts a job; resolves with its record once it runs (its end: wait()). */
  async start(req: JobRequest): Promise<JobRecord> {
    const running = [...this.live.values()].find((j) => j.record.name === req.name && req.name !== 'manual')
    if (running !== undefined) throw new DmaError('DMA_JOB_STATE', `job ${req.name} still runs as job ${running.record.id}`)
    const driver = this.drivers(req.spec, req.tapeAgent)
    const record = await createJob(this.dir, {
      name: req.name,
      export: req.spec.text,
      pool: req.pool,
      level: req.level,
      state: 'running',
      createdAt: new Date().toISOString(),
      ...(req.scheduledFor === undefined ? {} : { scheduledFor: req.scheduledFor.toISOString() }),
      tapes: [],
      bytes: 0,
      files: 0,
      ...(req.compress === undefined ? {} : { compress: req.compress }),
      ...tapeAgentOf(req),
    })
    const live: LiveJob = { record, abort: new AbortController(), done: Promise.resolve(record), saving: Promise.resolve(), logging: Promise.resolve() }
    this.live.set(record.id, live)
    live.done = this.run(live, req, (ctx) => driver.backup(ctx)).finally(() => this.live.delete(record.id))
    return { ...record }
  }

  /** The job's record once it has ended. */
  async wait(id: string): Promise<JobRecord> {
    const live = this.live.get(id)
    return live === undefined ? loadJob(this.dir, id) : live.done
  }

  async get(id: string): Promise<JobRecord> {
    const live = this.live.get(id)
    return live === undefined ? loadJob(this.dir, id) : { ...live.record }
  }

  /** Every job the registry holds (live ones as they are now), by id. */
  async list(): Promise<JobRecord[]> {
    return (await jobRecords(this.dir)).map((r) => {
      const live = this.live.get(r.id)
      return live === undefined ? r : { ...live.record }
    })
  }

  async abort(id: string): Promise<JobRecord> {
    const live = this.live.get(id)
    if (live === undefined) {
      const job = await loadJob(this.dir, id)
      throw new DmaError('DMA_JOB_STATE', `job ${id} is ${job.state}; only a running or paused job can be aborted`)
    }
    this.log(live, 'warn', 'abort requested')
    live.abort.abort(new DmaError('DMA_ABORTED', `job ${id} was aborted`))
    live.waiter?.fail(new DmaError('DMA_ABORTED', `job ${id} was aborted`))
    return live.done
  }

  /** Continues a job paused for a tape; DMA_NO_TAPE while the pool still has none to give. */
  async continue(id: string): Promise<JobRecord> {
    const live = this.live.get(id)
    if (live?.waiter === undefined || live.record.state !== 'paused') {
      const job = live?.record ?? (await loadJob(this.dir, id))
      throw new DmaError('DMA_JOB_STATE', `job ${id} is ${job.state}, not paused for a tape`)
    }
    const next = await (await Pool.open(live.record.pool)).peek()
    if (next.isNew) throw new DmaError('DMA_NO_TAPE', `job ${id} needs tape ${next.label}: tsnfs backup label ${live.record.pool} ${next.label}`)
    this.log(live, 'info', `continued onto tape ${next.label}`)
    const waiter = live.waiter
    delete live.waiter
    live.record.state = 'running'
    delete live.record.needs
    await this.save(live)
    waiter.resume()
    return { ...live.record }
  }

  /** Aborts every live job and waits for them (the server is stopping). */
  async close(): Promise<void> {
    const live = [...this.live.keys()]
    await Promise.all(live.map((id) => this.abort(id).catch(() => undefined)))
  }

  private save(live: LiveJob): Promise<void> {
    const snapshot = { ...live.record }
    this.watch?.(snapshot)
    live.saving = live.saving.then(() => saveJob(this.dir, snapshot)).catch(() => undefined)
    return live.saving
  }

  private log(live: LiveJob, level: LogLevel, message: string): void {
    const line = { time: new Date().toISOString(), level, message }
    live.logging = live.logging.then(() => appendLog(this.dir, live.record.id, line)).catch(() => undefined)
  }

  private async run(live: LiveJob, req: JobRequest, backup: (ctx: JobContext) => Promise<void>): Promise<JobRecord> {
    const job = live.record
    const signal = live.abort.signal
    let history = ''
    let pool: Pool | undefined
    try {
      pool = await Pool.open(req.pool)
      await pool.beginBackup(job.id, job.export, job.level, new Date(job.createdAt))
      this.log(live, 'info', `level ${job.level} backup of ${job.export} to pool ${pool.dir}${req.scheduledFor === undefined ? '' : ` (scheduled for ${req.scheduledFor.toISOString()})`}`)
      await this.logBase(live)
      const ctx: JobContext = {
        job,
        spec: req.spec,
        exclude: req.exclude ?? [],
        ...(req.tapeAgent === undefined ? {} : { tapeAgent: req.tapeAgent }),
        ...(req.compress === undefined ? {} : { compress: req.compress }),
        tape: this.tapeAccess(live, pool),
        signal,
        log: (level, message) => {
          this.log(live, level, message)
        },
        file: (e: HistoryEntry) => {
          job.files++
          history += `${JSON.stringify(e)}\n`
          if (history.length > 64 * 1024) {
            const lines = history
            history = ''
            void appendHistory(this.dir, job.id, lines).catch(() => undefined)
          }
        },
        progress: (bytes) => {
          job.bytes = bytes
        },
      }
      await backup(ctx)
      signal.throwIfAborted()
      job.state = 'done'
      this.log(live, 'info', `done: ${job.bytes} bytes, ${job.files} files on ${job.tapes.join(', ')}`)
    } catch (err) {
      job.state = signal.aborted ? 'aborted' : 'failed'
      job.error = err instanceof Error ? err.message : String(err)
      this.log(live, 'error', `${job.state}: ${job.error}`)
    }
    delete job.needs
    job.endedAt = new Date().toISOString()
    if (history !== '') await appendHistory(this.dir, job.id, history).catch(() => undefined)
    await pool?.endBackup(job.id, job.state === 'done' ? 'done' : job.state === 'aborted' ? 'aborted' : 'failed', job.bytes).catch(() => undefined)
    if (job.state === 'done' && req.verify !== undefined) await this.verifyAfter(live, req.verify)
    await this.save(live)
    // Ingest needs the record saved as done (it reads the registry).
    if (job.state === 'done' && req.spec.kind === 'ndmp') await this.ingest(live)
    await live.logging
    return { ...job }
  }

  /**
   * Puts the job's file history into the catalog now, so the first restore after it plans at
   * once. A failure is logged, not fatal: the backup is on tape, and a restore ingests it later.
   */
  private async ingest(live: LiveJob): Promise<void> {
    const job = live.record
    const started = Date.now()
    try {
      const cat = Catalog.open(catalogPath(this.stateDir))
      try {
        const r = await ingestJobs(cat, this.stateDir, job.export)
        const id = r.added.get(job.id)
        const why = r.skipped.find((s) => s.job === job.id)?.why
        if (id !== undefined) this.log(live, 'info', `file history in the catalog as backup ${id} (${job.files} entries, ${Date.now() - started} ms)`)
        else if (why !== undefined) this.log(live, 'warn', `file history not in the catalog: ${why}`)
      } finally {
        cat.close()
      }
    } catch (err) {
      this.log(live, 'warn', `file history not in the catalog yet (a restore ingests it): ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /** The schedule's verify=: the result goes into the job's log and record; the job stays done (the backup is on tape). */
  private async verifyAfter(live: LiveJob, method: VerifyMethod): Promise<void> {
    const job = live.record
    this.log(live, 'info', method === 'restore' ? `verify by restore: restoring into a scratch directory under ${this.stateDir}` : 'verify: rereading the backup from its tapes')
    try {
      const target = { job: job.id, pool: job.pool }
      const report = method === 'restore' ? await verifyByRestore(this.stateDir, target, live.abort.signal) : await verifyPoolBackup(this.stateDir, target, live.abort.signal)
      job.verify = report
      this.log(live, report.ok ? 'info' : 'error', verifyLine(report))
    } catch (err) {
      this.log(live, 'error', `verify: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /** Says in the log what a level N>0 is relative to (dump's rule: the newest lower level of the export). */
  private async logBase(live: LiveJob): Promise<void> {
    const job = live.record
    if (job.level === 0) return
    const base = (await jobRecords(this.dir)).filter((r) => r.export === job.export && r.state === 'done' && r.level < job.level).at(-1)
    if (base === undefined) this.log(live, 'warn', `level ${job.level}: no lower level backup of ${job.export} is recorded; under dump's rule this copies everything`)
    else this.log(live, 'info', `level ${job.level}: changes since job ${base.id} (level ${base.level}, ${base.createdAt})`)
  }

  private tapeAccess(live: LiveJob, pool: Pool): TapeAccess {
    const job = live.record
    let current: string | null = null
    const take = async (pauseFirst: boolean): Promise<TapeHandle> => {
      for (let paused = pauseFirst; ; paused = true) {
        if (paused) await this.pause(live, pool, current)
        live.abort.signal.throwIfAborted()
        const got = await pool.allocate(job.id)
        if ('needs' in got) continue
        const tape = (await pool.index()).tapes.find((t) => t.label === got.label)
        current = got.label
        job.tapes.push(got.label)
        job.state = 'running'
        delete job.needs
        await this.save(live)
        this.log(live, 'info', `writing tape ${got.label}`)
        return { label: got.label, path: got.path, capacity: tape?.capacity ?? 0 }
      }
    }
    return {
      first: async () => take(false),
      next: async (used) => {
        if (current !== null) {
          await pool.markFull(current, used)
          this.log(live, 'warn', `tape ${current} is full (end of medium after ${used} bytes)`)
        }
        return take(true)
      },
      wrote: async (used) => {
        if (current !== null) await pool.wrote(current, used)
      },
    }
  }

  /** Parks the job "needs next tape" until continue() or abort(). */
  private async pause(live: LiveJob, pool: Pool, after: string | null): Promise<void> {
    const job = live.record
    const next = await pool.peek()
    // The waiter is in place before the record says paused: a continue that sees "paused" finds it.
    const resumed = new Promise<void>((resolve, reject) => {
      live.waiter = { resume: resolve, fail: reject }
    })
    // An abort may come while the record is saved, before the await below: not an unhandled rejection.
    resumed.catch(() => undefined)
    if (live.abort.signal.aborted) live.waiter?.fail(live.abort.signal.reason as Error)
    job.state = 'paused'
    job.needs = next
    await this.save(live)
    const how = next.isNew ? `label it (tsnfs backup label ${pool.dir} ${next.label}), then ` : ''
    this.log(live, 'warn', `needs next tape ${next.label}${after === null ? '' : ` after ${after}`}: ${how}tsnfs backup continue ${job.id}`)
    try {
      await resumed
    } finally {
      delete live.waiter
    }
  }
}

/** The NDMP agent whose tape service opens the job's tapes (the export's own, or tape=); none for the file driver. */
function tapeAgentOf(req: JobRequest): { tapeAgent?: string } {
  if (req.tapeAgent !== undefined) return { tapeAgent: req.tapeAgent }
  if (req.spec.kind !== 'ndmp') return {}
  const host = req.spec.host.includes(':') ? `[${req.spec.host}]` : req.spec.host
  return { tapeAgent: `${host}:${req.spec.port}` }
}
