/** Why a decode failed; stable codes that tests and logs can match on. */
export type XdrDecodeErrorCode =
  | 'XDR_SHORT_BUFFER'
  | 'XDR_TOO_LONG'
  | 'XDR_BAD_ENUM'
  | 'XDR_BAD_DISCRIMINANT'
  | 'XDR_BAD_BOOL'
  | 'XDR_TRAILING_BYTES'

export class XdrDecodeError extends Error {
  readonly code: XdrDecodeErrorCode
  constructor(code: XdrDecodeErrorCode, message: string) {
    super(message)
    this.name = 'XdrDecodeError'
    this.code = code
  }
}

/** Encoding a value that does not fit its XDR type. Always a bug in the caller. */
export class XdrEncodeError extends Error {
  readonly code = 'XDR_ENCODE'
  constructor(message: string) {
    super(message)
    this.name = 'XdrEncodeError'
  }
}
