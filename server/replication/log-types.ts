/*
 * The interfaces the replication pieces meet on (server/replication/README.md):
 * the change log (change-log.ts) is a ChangeSink for the replicating layer
 * and a ChangeSource for the senders; the layer on the primary is the
 * DataSource that fills WRITE changes with their bytes when they are shipped.
 */
import type { Change } from '../../vfs/replica/change.ts'
import type { FileRef } from '../../vfs/types.ts'

export interface LoggedChange {
  seq: bigint
  change: Change
  /** Encoded size in the log, for lag in bytes and batch budgets. */
  bytes: number
  /**
   * The change's repl_change XDR as logged (a view into the record; a WRITE's data left out),
   * when the source has it: the sender ships these bytes instead of encoding the change again.
   */
  xdr?: Buffer
  /** For a WRITE logged without data: the bytes it wrote, when the log still keeps them in memory (ChangeSink.append). */
  data?: Buffer
}

/** One export's change log, read by the senders. */
export interface ChangeSource {
  /** The first change still in the log (lastSeq() + 1 when empty); positions below it need a full resync. */
  firstSeq(): bigint
  /** The last change appended (0n before any). */
  lastSeq(): bigint
  /**
   * Changes from `from` on, in order, until `maxChanges` or about `maxBytes`
   * (at least one change when any exists). Empty when `from` > lastSeq().
   * Throws ReplicationError('REPL_TRIMMED') when `from` < firstSeq().
   */
  read(from: bigint, maxChanges: number, maxBytes: number): Promise<LoggedChange[]>
  /** Resolves when a change after `seq` is appended (or at once if there is one); the sender's wait for work. */
  waitAfter(seq: bigint, signal?: AbortSignal): Promise<void>
  /** Lets the log drop changes up to `seq` (every standby has them durable, or retention says so). */
  trim(seq: bigint): Promise<void>
}

/** The primary's current bytes of a range, for shipping a WRITE change; null when the object is gone. */
export interface DataSource {
  readRange(ref: FileRef, offset: bigint, length: number): Promise<Buffer | null>
}

export type ReplicationErrorCode =
  | 'REPL_TRIMMED'
  | 'REPL_LOG_CORRUPT'
  | 'REPL_LOG_VERSION'
  | 'REPL_BAD_VERSION'
  | 'REPL_PEER_REFUSED'
  | 'REPL_TIMEOUT'
  | 'REPL_CLOSED'
  /** A change that cannot be valid (a write's data not its length, a bad time or name): refused on decode (change-codec.ts). */
  | 'REPL_BAD_CHANGE'

export class ReplicationError extends Error {
  readonly code: ReplicationErrorCode
  constructor(code: ReplicationErrorCode, message: string) {
    super(message)
    this.name = 'ReplicationError'
    this.code = code
  }
}
