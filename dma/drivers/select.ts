/*
 * Which driver runs a job: an NDMP export, or a file: export with a tape agent, goes through
 * NDMP (ndmp-job.ts; credentials from STATE/ndmp-auth); a file: export without one is copied
 * onto the pool's tapes by the file driver.
 */
import { ndmpDriver } from '../ndmp-job.ts'
import type { ExportSpec } from '../schedule/export-spec.ts'
import type { DriverFor, JobDriver } from './driver.ts'
import { fileDriver } from './file-driver.ts'

export function driversFor(stateDir: string): DriverFor {
  const ndmp = ndmpDriver(stateDir)
  return (spec: ExportSpec, tapeAgent?: string): JobDriver => (spec.kind === 'file' && tapeAgent === undefined ? fileDriver : ndmp)
}
