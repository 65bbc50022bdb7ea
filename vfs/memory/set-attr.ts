/*
 * SETATTR on an inode (RFC 1813 §3.3.2), split into a check that may throw
 * and an apply that cannot, so a create can validate before it allocates.
 */
import type { SetAttr, Timespec } from '../types.ts'
import type { Inode } from './inode.ts'
import type { InodeTable } from './inode-table.ts'

export { checkSetAttr, MAX_FILE_SIZE } from '../set-attr-checks.ts'

/** Applies a checked SetAttr; growing a file costs no space (sparse), so this cannot fail. */
export function applySetAttr(table: InodeTable, ino: Inode, set: SetAttr, now: Timespec): void {
  if (set.mode !== undefined) ino.mode = set.mode & 0o7777
  if (set.uid !== undefined) ino.uid = set.uid
  if (set.gid !== undefined) ino.gid = set.gid
  if (set.size !== undefined && ino.type === 'file') {
    const used = ino.data.used
    ino.data.truncate(set.size)
    table.account(BigInt(ino.data.used - used))
    // truncate(2) marks mtime and ctime even when the size does not change.
    ino.mtime = now
  }
  if (set.atime !== undefined) ino.atime = set.atime === 'now' ? now : { sec: set.atime.sec, nsec: set.atime.nsec }
  if (set.mtime !== undefined) ino.mtime = set.mtime === 'now' ? now : { sec: set.mtime.sec, nsec: set.mtime.nsec }
  ino.ctime = now
}
