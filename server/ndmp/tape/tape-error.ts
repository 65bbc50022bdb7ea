/**
 * A tape operation's failure, named by the NDMP error it becomes on the wire (draft §3.7,
 * ndmp_error without the version prefix): the TAPE and MOVER handlers map the code to the
 * version's enum value; the message says what and where (file and byte offset for I/O).
 */
export type TapeErrorCode =
  | 'NO_DEVICE_ERR'
  | 'DEVICE_OPENED_ERR'
  | 'DEVICE_BUSY_ERR'
  | 'DEV_NOT_OPEN_ERR'
  | 'PERMISSION_ERR'
  | 'WRITE_PROTECT_ERR'
  | 'NO_TAPE_LOADED_ERR'
  | 'ILLEGAL_ARGS_ERR'
  | 'IO_ERR'
  | 'EOF_ERR'
  | 'EOM_ERR'

export class TapeError extends Error {
  readonly code: TapeErrorCode
  constructor(code: TapeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TapeError'
    this.code = code
  }
}
