/*
 * What runs a job's data movement: the NDMP driver (ndmp-job.ts) or the file driver. The job
 * service gives a driver its tapes, its log and its file history; the driver moves the bytes
 * and resolves when the backup is complete (or rejects: the job fails, or is aborted).
 */
import type { Compression } from '../../backup/compress.ts'
import type { LogLevel } from '../../backup/types.ts'
import type { JobRecord } from '../jobs/record.ts'
import type { ExportSpec } from '../schedule/export-spec.ts'

export interface TapeHandle {
  readonly label: string
  /** The tape file. */
  readonly path: string
  readonly capacity: number
}

export interface TapeAccess {
  /** The first tape (the job pauses "needs next tape" until one is labelled if the pool has none). */
  first(): Promise<TapeHandle>
  /** The current tape is at its end after `used` bytes (EOM): marked full; the job pauses until continued onto the next. */
  next(used: number): Promise<TapeHandle>
  /** Bytes written on the current tape so far. */
  wrote(used: number): Promise<void>
}

/** One file history entry as the job keeps it (JSON lines in STATE/jobs/ID.fh). */
export interface HistoryEntry {
  path: string
  type?: string
  size?: string
  mtime?: number
  node?: string
  /** Where the file's data starts in the stream (NDMP fh_info), for direct access restore. */
  fhInfo?: string
  /** The rest of the NDMP file stat (the catalog keeps them): permission bits, owner, times in seconds. */
  mode?: number
  uid?: number
  gid?: number
  atime?: number
  ctime?: number
}

export interface JobContext {
  readonly job: Readonly<JobRecord>
  readonly spec: ExportSpec
  readonly exclude: readonly string[]
  readonly tapeAgent?: string
  /** Asks the data agent for a compressed stream (env COMPRESS). */
  readonly compress?: Compression
  readonly tape: TapeAccess
  readonly signal: AbortSignal
  log(level: LogLevel, message: string): void
  file(entry: HistoryEntry): void
  /** Stream bytes so far (the job's `bytes`). */
  progress(bytes: number): void
}

export interface JobDriver {
  backup(ctx: JobContext): Promise<void>
}

/** Picks the driver for an export (and its separate tape agent, if any). */
export type DriverFor = (spec: ExportSpec, tapeAgent?: string) => JobDriver
