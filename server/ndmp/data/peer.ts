/*
 * What a running DATA operation tells the DMA, in our terms; data/posts.ts turns each call into
 * the version's LOG_MESSAGE / LOG_FILE / FH_* / NOTIFY_* post. Kept apart so the jobs know no
 * wire types and the tests can read what a job said.
 */
import type { FhBatch } from './file-history.ts'
import type { DataHaltReason } from './state.ts'

export type PeerLogType = 'normal' | 'debug' | 'error' | 'warning'

/** ndmp4_recovery_status values (v3 carries an ndmp3_error instead: posts.ts maps). */
export const RecoveryStatus = {
  SUCCESSFUL: 0,
  FAILED_PERMISSION: 1,
  FAILED_NOT_FOUND: 2,
  FAILED_NO_DIRECTORY: 3,
  FAILED_OUT_OF_MEMORY: 4,
  FAILED_IO_ERROR: 5,
  FAILED_UNDEFINED_ERROR: 6,
} as const
export type RecoveryStatus = (typeof RecoveryStatus)[keyof typeof RecoveryStatus]

export interface DataPeer {
  log(type: PeerLogType, message: string): void
  logFile(name: string, status: RecoveryStatus): void
  /** Resolves once the post is queued on the control connection. */
  fileHistory(batch: FhBatch): Promise<void>
  /** NOTIFY_DATA_READ: asks the DMA to have the mover read [offset, offset+length) (direct access). */
  dataRead(offset: bigint, length: bigint): void
  /** NOTIFY_DATA_HALTED. */
  halted(reason: DataHaltReason): void
}
