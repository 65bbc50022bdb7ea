/*
 * The admin channel's wire format: one JSON object per line each way. A request names its
 * command (`{"command":"status","volume":"v"}`); the reply is `{"ok":true,...}` or
 * `{"ok":false,"code":"...","message":"..."}`; a long operation sends `{"progress":{...}}` lines
 * before its reply. Lines are capped: a longer one is answered ADMIN_TOO_LONG and the
 * connection closed, since the rest of it cannot be told from the next request.
 */

/** Bytes of one request line at most (the newline excluded). */
export const MAX_REQUEST_LINE = 64 * 1024

export type AdminErrorCode =
  | 'ADMIN_BAD_REQUEST' // not JSON, not an object, no command
  | 'ADMIN_TOO_LONG' // a request line over MAX_REQUEST_LINE
  | 'ADMIN_UNKNOWN_COMMAND'
  | 'ADMIN_BAD_ARGUMENT' // a field missing or of the wrong type or value
  | 'ADMIN_NO_VOLUME' // no served volume of that name
  | 'ADMIN_BUSY' // a long operation already runs on the volume
  | 'ADMIN_FAILED' // the command failed for a reason without a code of its own

export class AdminError extends Error {
  readonly code: AdminErrorCode
  constructor(code: AdminErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'AdminError'
    this.code = code
  }
}

export interface AdminRequest {
  readonly command: string
  readonly [field: string]: unknown
}

export type AdminReply = { readonly ok: true; readonly [field: string]: unknown } | { readonly ok: false; readonly code: string; readonly message: string }

/** A request line as an AdminRequest, or AdminError ADMIN_BAD_REQUEST saying what is wrong. */
export function parseRequest(line: string): AdminRequest {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (err) {
    throw new AdminError('ADMIN_BAD_REQUEST', `not JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AdminError('ADMIN_BAD_REQUEST', 'a request is a JSON object')
  const command = (value as Record<string, unknown>).command
  if (typeof command !== 'string' || command === '') throw new AdminError('ADMIN_BAD_REQUEST', 'a request needs "command", a non-empty string')
  return value as AdminRequest
}

/** A VolumeError message starts with its code ("VOLUME_MEMBER: ..."): the reply carries it once, in `code`. */
export function errorReply(err: unknown): AdminReply {
  if (err instanceof AdminError) return { ok: false, code: err.code, message: err.message }
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'ADMIN_FAILED'
  let message = err instanceof Error ? err.message : String(err)
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2)
  return { ok: false, code, message }
}
