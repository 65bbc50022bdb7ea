/**
 * An export list that cannot be used. Parsing never partially succeeds: the
 * first problem throws, and the message starts with `file:line:column` so an
 * operator can jump to it (`exports:3:14: unknown option "rwx"`).
 */
export class ExportsError extends Error {
  readonly code = 'EXPORTS_INVALID'
  readonly file: string
  readonly line: number
  readonly column: number
  /** The message without the `file:line:column: ` prefix. */
  readonly reason: string

  constructor(file: string, line: number, column: number, reason: string) {
    super(`${file}:${line}:${column}: ${reason}`)
    this.name = 'ExportsError'
    this.file = file
    this.line = line
    this.column = column
    this.reason = reason
  }
}
