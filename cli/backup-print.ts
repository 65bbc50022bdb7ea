/*
 * How tsnfs backup prints jobs, the schedule, log lines and a pool (for people; --json for scripts).
 */
import type { JobLogLine } from '../dma/jobs/log.ts'
import type { JobRecord } from '../dma/jobs/record.ts'
import type { ScheduledJob } from '../dma/jobs/service.ts'
import type { PoolIndex } from '../dma/pool/index-file.ts'

export function formatJobs(jobs: readonly JobRecord[], scheduled: readonly ScheduledJob[]): string {
  const rows = jobs.map((j) => {
    const what = j.state === 'paused' && j.needs !== undefined ? `needs tape ${j.needs.label}${j.needs.isNew ? ' (label it)' : ''}` : (j.error ?? '')
    const verified = j.verify === undefined ? '' : ` ${j.verify.method === 'restore' ? 'verified by restore' : 'verified'} ${j.verify.ok ? 'OK' : 'FAILED'}`
    return `${j.id.padStart(4)}  ${j.state.padEnd(9)} ${String(j.level).padStart(5)}  ${j.name.padEnd(12)} ${j.export.padEnd(28)} ${String(j.bytes).padStart(12)} ${String(j.files).padStart(7)}  ${j.tapes.join(',') || '-'}  ${what}${verified}`.trimEnd()
  })
  let out = `  id  state     level  name         export                              bytes   files  tapes\n${rows.join('\n')}${rows.length === 0 ? '' : '\n'}`
  if (scheduled.length > 0) {
    out += `\nscheduled:\n${scheduled.map((s) => `  ${s.name.padEnd(12)} next ${s.next ?? 'never'}  level ${s.level ?? '-'}  ${s.export} -> ${s.pool}`).join('\n')}\n`
  }
  return out
}

export function formatLog(lines: readonly JobLogLine[]): string {
  return lines.map((l) => `${l.time} job ${l.job} L${l.backupLevel} ${l.level.padEnd(5)} ${l.message}\n`).join('')
}

export function formatPool(dir: string, index: PoolIndex): string {
  const tapes = index.tapes.map((t) => `  ${t.label.padEnd(16)} ${t.state.padEnd(8)} ${String(t.used).padStart(14)} / ${t.capacity}`)
  const backups = index.backups.map((b) => `  job ${b.job.padEnd(5)} ${b.status.padEnd(8)} level ${b.level} ${b.export} ${b.startedAt} ${b.bytes} bytes on ${b.tapes.join(',') || '-'}`)
  return `pool ${index.name} (${dir}): keep ${index.keepChains} chains\n${tapes.join('\n')}\nbackups:\n${backups.join('\n')}\n`
}
