/*
 * Per-job logs: STATE/jobs/ID.log, JSON lines {time, level, message}. Queried by job, by the
 * job's backup level and by severity; a query reads the job records to know each job's level.
 */
import { appendFile, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LogLevel } from '../../backup/types.ts'
import { isErrno } from '../errors.ts'
import type { JobRecord } from './record.ts'

export interface LogLine {
  time: string
  level: LogLevel
  message: string
}

export interface LogQuery {
  job?: string
  /** The job's backup level (0..9). */
  backupLevel?: number
  /** At least this severity. */
  severity?: LogLevel
}

export interface JobLogLine extends LogLine {
  job: string
  backupLevel: number
}

const RANK: Record<LogLevel, number> = { info: 0, warn: 1, error: 2 }
/** A job's log is read whole for a query; past this only its tail is shown. */
const MAX_LOG_BYTES = 16 * 1024 * 1024

export function appendLog(jobsDir: string, id: string, line: LogLine): Promise<void> {
  return appendFile(join(jobsDir, `${id}.log`), `${JSON.stringify(line)}\n`)
}

/** Every job record in the registry, by id. */
export async function jobRecords(jobsDir: string): Promise<JobRecord[]> {
  let names: string[]
  try {
    names = await readdir(jobsDir)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return []
    throw err
  }
  const out: JobRecord[] = []
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    try {
      out.push(JSON.parse(await readFile(join(jobsDir, n), 'utf8')) as JobRecord)
    } catch {
      // A record being replaced or torn: skipped by this query.
    }
  }
  return out.sort((a, b) => Number(a.id) - Number(b.id))
}

/** The log lines matching `q`, oldest job first, in the order written. */
export async function queryLogs(jobsDir: string, q: LogQuery): Promise<JobLogLine[]> {
  const out: JobLogLine[] = []
  for (const job of await jobRecords(jobsDir)) {
    if (q.job !== undefined && job.id !== q.job) continue
    if (q.backupLevel !== undefined && job.level !== q.backupLevel) continue
    let text: string
    try {
      const buf = await readFile(join(jobsDir, `${job.id}.log`))
      text = buf.subarray(Math.max(0, buf.length - MAX_LOG_BYTES)).toString('utf8')
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue
      throw err
    }
    for (const raw of text.split('\n')) {
      if (raw === '') continue
      let line: LogLine
      try {
        line = JSON.parse(raw) as LogLine
      } catch {
        continue
      }
      if (q.severity !== undefined && RANK[line.level] < RANK[q.severity]) continue
      out.push({ ...line, job: job.id, backupLevel: job.level })
    }
  }
  return out
}
