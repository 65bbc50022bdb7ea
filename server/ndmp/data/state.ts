/*
 * The DATA service's state machine (draft-skardal-ndmpv4 §3.7, "Data state diagram"):
 *
 *   IDLE --DATA_LISTEN--> LISTEN --mover connects--> CONNECTED
 *   IDLE --DATA_CONNECT--> CONNECTED --START_BACKUP/RECOVER/RECOVER_FILEHIST--> ACTIVE
 *   ACTIVE --done / error / DATA_ABORT--> HALTED --DATA_STOP--> IDLE
 *   LISTEN, CONNECTED --DATA_ABORT--> HALTED (ABORTED)
 *
 * Pure bookkeeping with the exact error each refused transition answers; the handlers do the I/O.
 * Numbers are the draft's enum values, the same in v3 and v4.
 */

export const DataState = { IDLE: 0, ACTIVE: 1, HALTED: 2, LISTEN: 3, CONNECTED: 4 } as const
export type DataState = (typeof DataState)[keyof typeof DataState]

export const DataOperation = { NOACTION: 0, BACKUP: 1, RECOVER: 2, RECOVER_FILEHIST: 3 } as const
export type DataOperation = (typeof DataOperation)[keyof typeof DataOperation]

export const DataHaltReason = { NA: 0, SUCCESSFUL: 1, ABORTED: 2, INTERNAL_ERROR: 3, CONNECT_ERROR: 4 } as const
export type DataHaltReason = (typeof DataHaltReason)[keyof typeof DataHaltReason]

/** The NDMP errors a DATA request can answer (ndmp4_error values; v3 has the same numbers). */
export const NdmpErr = {
  NO_ERR: 0,
  NOT_SUPPORTED_ERR: 1,
  PERMISSION_ERR: 5,
  IO_ERR: 7,
  ILLEGAL_ARGS_ERR: 9,
  ILLEGAL_STATE_ERR: 19,
  UNDEFINED_ERR: 20,
  CONNECT_ERR: 23,
} as const
export type NdmpErr = (typeof NdmpErr)[keyof typeof NdmpErr]

/** Where the data connection goes, in our terms (the handlers map it to ndmp4_addr / ndmp3_addr). */
export type DataAddr =
  | { type: 'local' }
  | { type: 'tcp'; host: string; port: number }
  | { type: 'none' }

export interface DataStatus {
  operation: DataOperation
  state: DataState
  haltReason: DataHaltReason
  bytesProcessed: bigint
  /** null: unknown (the reply sets the UNS bit). */
  estBytesRemain: bigint | null
  estTimeRemain: number | null
  addr: DataAddr
  /** The window the DMA is asked to make the mover read (NOTIFY_DATA_READ), for direct access. */
  readOffset: bigint
  readLength: bigint
}

/** A refused transition: `error` is the reply's error code. */
export class DataStateError extends Error {
  readonly error: NdmpErr
  constructor(error: NdmpErr, message: string) {
    super(message)
    this.name = 'DataStateError'
    this.error = error
  }
}

const NAMES: Record<DataState, string> = { 0: 'IDLE', 1: 'ACTIVE', 2: 'HALTED', 3: 'LISTEN', 4: 'CONNECTED' }

export function stateName(s: DataState): string {
  return NAMES[s]
}

export class DataMachine {
  private s: DataStatus = DataMachine.idle()

  private static idle(): DataStatus {
    return {
      operation: DataOperation.NOACTION,
      state: DataState.IDLE,
      haltReason: DataHaltReason.NA,
      bytesProcessed: 0n,
      estBytesRemain: null,
      estTimeRemain: null,
      addr: { type: 'none' },
      readOffset: 0n,
      readLength: 0n,
    }
  }

  get status(): Readonly<DataStatus> {
    return this.s
  }

  get state(): DataState {
    return this.s.state
  }

  private require(op: string, ...allowed: DataState[]): void {
    if (!allowed.includes(this.s.state)) {
      throw new DataStateError(NdmpErr.ILLEGAL_STATE_ERR, `${op} in state ${stateName(this.s.state)}`)
    }
  }

  /** DATA_LISTEN / DATA_CONNECT: only from IDLE (draft §3.7.8, §3.7.9). */
  checkCanConnect(op: string): void {
    this.require(op, DataState.IDLE)
  }

  listening(addr: DataAddr): void {
    this.require('DATA_LISTEN', DataState.IDLE)
    this.s.state = DataState.LISTEN
    this.s.addr = addr
  }

  /** The mover reached our listener, or our DATA_CONNECT succeeded. */
  connected(addr: DataAddr): void {
    this.require('connect', DataState.IDLE, DataState.LISTEN)
    this.s.state = DataState.CONNECTED
    this.s.addr = addr
  }

  /** START_BACKUP / START_RECOVER / START_RECOVER_FILEHIST: v3 and v4 need the connection first. */
  checkCanStart(op: string): void {
    this.require(op, DataState.CONNECTED)
  }

  start(operation: DataOperation): void {
    this.require('start', DataState.CONNECTED)
    this.s.state = DataState.ACTIVE
    this.s.operation = operation
    this.s.bytesProcessed = 0n
  }

  progress(bytes: bigint, estRemain: bigint | null): void {
    this.s.bytesProcessed = bytes
    this.s.estBytesRemain = estRemain
  }

  /** Direct access: the window we asked the DMA to have the mover read. */
  reading(offset: bigint, length: bigint): void {
    this.s.readOffset = offset
    this.s.readLength = length
  }

  /** True when this call halted it (a later halt of an already halted operation changes nothing). */
  halt(reason: DataHaltReason): boolean {
    if (this.s.state === DataState.HALTED || this.s.state === DataState.IDLE) return false
    this.s.state = DataState.HALTED
    this.s.haltReason = reason
    this.s.estBytesRemain = this.s.haltReason === DataHaltReason.SUCCESSFUL ? 0n : this.s.estBytesRemain
    return true
  }

  /** DATA_ABORT: anything but IDLE (draft §3.7.5); in HALTED it changes nothing. */
  checkCanAbort(): void {
    this.require('DATA_ABORT', DataState.LISTEN, DataState.CONNECTED, DataState.ACTIVE, DataState.HALTED)
  }

  /** DATA_STOP: only HALTED, back to IDLE with everything reset (draft §3.7.7). */
  stop(): void {
    this.require('DATA_STOP', DataState.HALTED)
    this.s = DataMachine.idle()
  }

  /** DATA_GET_ENV: the env of the operation in ACTIVE or HALTED (draft §3.7.6). */
  checkCanGetEnv(): void {
    this.require('DATA_GET_ENV', DataState.ACTIVE, DataState.HALTED)
  }
}
