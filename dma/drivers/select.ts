/*
 * Which driver backs up an export: file: exports the file driver; NDMP exports the NDMP job
 * driver (ndmp-job.ts) once the NDMP client is in the tree.
 */
import { DmaError } from '../errors.ts'
import type { ExportSpec } from '../schedule/export-spec.ts'
import type { JobDriver } from './driver.ts'
import { fileDriver } from './file-driver.ts'

export function driverFor(spec: ExportSpec): JobDriver {
  if (spec.kind === 'file') return fileDriver
  throw new DmaError('DMA_NO_DRIVER', `${spec.text}: NDMP exports need the NDMP job driver, not built yet (issue 16)`)
}
