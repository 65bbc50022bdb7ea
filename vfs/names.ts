/*
 * Checks on the name bytes of a directory entry, the same in every backend. Names are bytes, not
 * strings (RFC 1813 §3.2: filename3 is an opaque string the server interprets).
 */
import { VfsError } from './errors.ts'

/** pathconf name_max; with no_trunc TRUE a longer name is an error (RFC 1813 §3.3.20). */
export const NAME_MAX = 255

export function isDot(name: Buffer): boolean {
  return name.length === 1 && name[0] === 0x2e
}

export function isDotDot(name: Buffer): boolean {
  return name.length === 2 && name[0] === 0x2e && name[1] === 0x2e
}

/** A name that could be stored: non-empty, no `/` or NUL, at most NAME_MAX bytes. */
export function checkName(name: Buffer): void {
  if (name.length === 0) throw new VfsError('EINVAL', 'empty name')
  if (name.length > NAME_MAX) throw new VfsError('ENAMETOOLONG')
  if (name.includes(0x2f) || name.includes(0)) throw new VfsError('EINVAL', 'name contains / or NUL')
}

/** A name for a new entry: `.` and `..` always exist, so creating them is EEXIST (as mkdir(2) says). */
export function checkNewName(name: Buffer): void {
  checkName(name)
  if (isDot(name) || isDotDot(name)) throw new VfsError('EEXIST')
}

/** A name to remove or rename away: `.` and `..` cannot be (rmdir(2) gives EINVAL for `.`). */
export function checkOldName(name: Buffer): void {
  checkName(name)
  if (isDot(name) || isDotDot(name)) throw new VfsError('EINVAL', 'cannot remove . or ..')
}
