/*
 * The MOVER's states, modes and reasons. Their numbers are the draft's (draft-skardal-ndmpv4
 * §3.9; NDMP v3 uses the same values), so the handlers of both versions pass them through.
 */
export const MoverState = { IDLE: 0, LISTEN: 1, ACTIVE: 2, PAUSED: 3, HALTED: 4 } as const
export type MoverState = (typeof MoverState)[keyof typeof MoverState]

/** READ: data connection -> tape (a backup); WRITE: tape -> data connection (a restore). The draft's naming. */
export const MoverMode = { READ: 0, WRITE: 1, NOACTION: 2 } as const
export type MoverMode = (typeof MoverMode)[keyof typeof MoverMode]

export const PauseReason = { NA: 0, EOM: 1, EOF: 2, SEEK: 3, MEDIA_ERROR: 4, EOW: 5 } as const
export type PauseReason = (typeof PauseReason)[keyof typeof PauseReason]

export const HaltReason = { NA: 0, CONNECT_CLOSED: 1, ABORTED: 2, INTERNAL_ERROR: 3, CONNECT_ERROR: 4 } as const
export type HaltReason = (typeof HaltReason)[keyof typeof HaltReason]

/** A MOVER request refused: the NDMP error's name without the version prefix. */
export type MoverErrorCode = 'ILLEGAL_STATE_ERR' | 'ILLEGAL_ARGS_ERR' | 'DEV_NOT_OPEN_ERR' | 'PERMISSION_ERR' | 'CONNECT_ERR' | 'READ_IN_PROGRESS_ERR' | 'NOT_SUPPORTED_ERR'

export class MoverError extends Error {
  readonly code: MoverErrorCode
  constructor(code: MoverErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MoverError'
    this.code = code
  }
}

/** The largest 64-bit window length: "the rest of the stream". */
export const WINDOW_INFINITE = 2n ** 64n - 1n
