/*
 * A job as the registry keeps it: STATE/jobs/ID.json, rewritten (atomically) at each change.
 */
import type { Compression } from '../../backup/compress.ts'
import type { VerifyReport } from './verify.ts'

export type JobState = 'scheduled' | 'running' | 'paused' | 'done' | 'failed' | 'aborted'

export const ACTIVE_STATES: ReadonlySet<JobState> = new Set(['running', 'paused'])

export interface JobRecord {
  id: string
  /** The schedule's job name, or "manual". */
  name: string
  export: string
  pool: string
  level: number
  state: JobState
  createdAt: string
  endedAt?: string
  /** The slot a scheduled run was for. */
  scheduledFor?: string
  /** Labels written, in order. */
  tapes: string[]
  bytes: number
  files: number
  /** While paused: the tape label the job waits for (`isNew`: it must be labelled first). */
  needs?: { label: string; isNew: boolean }
  error?: string
  /** The data agent was asked to compress the stream (COMPRESS=): a restore reads it whole, never by offset. */
  compress?: Compression
  /** The NDMP agent (HOST:PORT) whose tape service opened the tapes: verify reads them through it when they are not on this host. */
  tapeAgent?: string
  /** The last verify of this job's backup (tsnfs backup verify, or the schedule's verify=restore). */
  verify?: VerifyReport
}
