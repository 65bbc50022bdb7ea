/*
 * The NDMP credentials file (`tsnfs serve --ndmp-auth FILE`): one `user:password` a line; `#`
 * starts a comment line; blank lines are skipped. The password is everything after the first
 * colon (it may hold colons); neither part may be empty, the user may not hold whitespace, and
 * a user appears once. The passwords are clear text because NDMP's MD5 scheme needs them (the
 * digest is over the password itself, xdr/ndmp/md5.ts): keep the file mode 0600.
 */
import { readFileSync } from 'node:fs'

export type NdmpAuthErrorCode = 'NDMP_AUTH_FILE'

export class NdmpAuthFileError extends Error {
  readonly code: NdmpAuthErrorCode = 'NDMP_AUTH_FILE'
  constructor(message: string) {
    super(message)
    this.name = 'NdmpAuthFileError'
  }
}

/** user -> password. */
export type NdmpCredentials = ReadonlyMap<string, string>

/** The longest file we read: credentials are a few lines, never megabytes. */
const MAX_FILE = 1024 * 1024
/** The longest user or password: NDMP strings are unbounded, our lines are not. */
const MAX_FIELD = 1024

export function parseNdmpAuth(text: string, file: string): NdmpCredentials {
  const users = new Map<string, string>()
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '')
    const where = `${file}:${i + 1}`
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon < 0) throw new NdmpAuthFileError(`${where}: expected user:password`)
    const user = line.slice(0, colon)
    const password = line.slice(colon + 1)
    if (user === '' || /\s/.test(user)) throw new NdmpAuthFileError(`${where}: the user name is empty or holds white space`)
    if (password === '') throw new NdmpAuthFileError(`${where}: the password of ${user} is empty`)
    if (user.length > MAX_FIELD || password.length > MAX_FIELD) throw new NdmpAuthFileError(`${where}: longer than ${MAX_FIELD} characters`)
    if (users.has(user)) throw new NdmpAuthFileError(`${where}: ${user} appears twice`)
    users.set(user, password)
  }
  if (users.size === 0) throw new NdmpAuthFileError(`${file}: no user:password line`)
  return users
}

export function loadNdmpAuth(file: string): NdmpCredentials {
  let buf: Buffer
  try {
    buf = readFileSync(file)
  } catch (err) {
    throw new NdmpAuthFileError(`${file}: cannot read: ${(err as Error).message}`)
  }
  if (buf.length > MAX_FILE) throw new NdmpAuthFileError(`${file}: larger than ${MAX_FILE} bytes`)
  return parseNdmpAuth(buf.toString('utf8'), file)
}
