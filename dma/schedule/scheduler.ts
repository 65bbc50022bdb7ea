/*
 * The scheduler: wakes at the next slot of any job (at least once a minute, so a clock set
 * forward or a suspended host is noticed), and starts each job due (state.ts's rule: a run
 * missed while the server was down runs once at the next start). A job still running at its
 * next slot is not started twice: that slot is logged and skipped.
 */
import type { DmaService, ScheduledJob } from '../jobs/service.ts'
import type { ScheduleEntry } from './file.ts'
import { nextRun } from './cron.ts'
import { levelOn } from './levels.ts'
import { dueSlot, loadLastRuns, saveLastRuns } from './state.ts'
import type { LastRuns } from './state.ts'

export interface SchedulerOptions {
  /** The clock (tests run the scheduler at chosen times). */
  now?: () => Date
  onError?: (err: unknown, entry: ScheduleEntry) => void
  /** Called after each tick with the jobs started (tests wait on it). */
  onTick?: (started: Array<{ name: string; id: string; level: number; slot: Date }>) => void
}

const MAX_SLEEP_MS = 60_000

export class Scheduler {
  private readonly service: DmaService
  private readonly entries: readonly ScheduleEntry[]
  private readonly now: () => Date
  private readonly opts: SchedulerOptions
  private last: LastRuns = new Map()
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private ticking: Promise<void> = Promise.resolve()

  private constructor(service: DmaService, entries: readonly ScheduleEntry[], opts: SchedulerOptions) {
    this.service = service
    this.entries = entries
    this.now = opts.now ?? (() => new Date())
    this.opts = opts
  }

  /** Loads the last runs, runs what was missed (once each) and schedules the rest. */
  static async start(service: DmaService, entries: readonly ScheduleEntry[], opts: SchedulerOptions = {}): Promise<Scheduler> {
    const s = new Scheduler(service, entries, opts)
    s.last = await loadLastRuns(service.stateDir)
    service.scheduled = () => s.view()
    await s.tick()
    return s
  }

  /** What `list` shows for the schedule: each job's next run and its level then. */
  view(): ScheduledJob[] {
    const now = this.now()
    return this.entries.map((e) => {
      const next = nextRun(e.time, now)
      return { name: e.name, export: e.export.text, pool: e.pool, next: next?.toISOString() ?? null, level: next === null ? null : levelOn(e.levels, next) }
    })
  }

  /** Runs the due jobs now (the timer calls this; tests too, after moving their clock). */
  tick(): Promise<void> {
    this.ticking = this.ticking.then(() => this.runDue())
    return this.ticking
  }

  private async runDue(): Promise<void> {
    if (this.stopped) return
    const now = this.now()
    const started: Array<{ name: string; id: string; level: number; slot: Date }> = []
    let changed = false
    for (const e of this.entries) {
      const last = this.last.get(e.name)
      if (last === undefined) {
        this.last.set(e.name, now)
        changed = true
        continue
      }
      const slot = dueSlot(e.time, last, now)
      if (slot === null) continue
      // Recorded before the job runs: a crash during it does not run the slot again.
      this.last.set(e.name, slot)
      changed = true
      const level = levelOn(e.levels, slot)
      try {
        const job = await this.service.start({
          name: e.name,
          spec: e.export,
          pool: e.pool,
          level,
          exclude: e.exclude,
          ...(e.tapeAgent === undefined ? {} : { tapeAgent: e.tapeAgent }),
          ...(e.verify === undefined ? {} : { verify: e.verify }),
          ...(e.compress === undefined ? {} : { compress: e.compress }),
          scheduledFor: slot,
        })
        started.push({ name: e.name, id: job.id, level, slot })
      } catch (err) {
        this.opts.onError?.(err, e)
      }
    }
    if (changed) await saveLastRuns(this.service.stateDir, this.last)
    this.opts.onTick?.(started)
    this.arm()
  }

  private arm(): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    const now = this.now()
    const next = Math.min(...this.entries.map((e) => nextRun(e.time, now)?.getTime() ?? Infinity))
    const ms = Math.max(1000, Math.min(MAX_SLEEP_MS, next - now.getTime()))
    this.timer = setTimeout(() => void this.tick(), ms)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.ticking
  }
}
