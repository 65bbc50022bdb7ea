/*
 * RENAME (RFC 1813 §3.3.14, POSIX rename(2)) on the memory backend: checks
 * everything first, then changes the tree in one synchronous step.
 */
import { VfsError } from '../errors.ts'
import type { DirChange, FileRef, Timespec } from '../types.ts'
import { nameKey } from './directory.ts'
import { attrOf } from './inode.ts'
import type { DirInode, Inode } from './inode.ts'
import type { InodeTable } from './inode-table.ts'
import { checkNewName, checkOldName } from '../names.ts'

/** True if `dir` is `ancestor` or lies below it. */
function isWithin(table: InodeTable, dir: DirInode, ancestor: Inode): boolean {
  for (let cur = dir; ; ) {
    if (cur.id === ancestor.id) return true
    if (cur.parent === cur.id) return false
    const up = table.byId(cur.parent)
    if (up.type !== 'dir') throw new Error('memory vfs: parent is not a directory')
    cur = up
  }
}

export function renameEntry(
  table: InodeTable,
  now: Timespec,
  fromRef: FileRef,
  fromName: Buffer,
  toRef: FileRef,
  toName: Buffer,
): { from: DirChange; to: DirChange } {
  const from = table.getDir(fromRef)
  const to = table.getDir(toRef)
  checkOldName(fromName)
  checkNewName(toName)
  const src = from.dir.get(nameKey(fromName))
  if (src === undefined) throw new VfsError('ENOENT')
  const moved = table.byId(src.id)
  const fromBefore = attrOf(from)
  const toBefore = attrOf(to)

  // A directory cannot become its own descendant.
  if (moved.type === 'dir' && isWithin(table, to, moved)) throw new VfsError('EINVAL', 'rename into own subtree')

  const dst = to.dir.get(nameKey(toName))
  let victim: Inode | null = null
  if (dst !== undefined) {
    // Two names for the same object (the same entry, or hard links): POSIX says do nothing.
    if (dst.id === src.id) {
      return { from: { before: fromBefore, after: attrOf(from) }, to: { before: toBefore, after: attrOf(to) } }
    }
    victim = table.byId(dst.id)
    if (moved.type === 'dir') {
      if (victim.type !== 'dir') throw new VfsError('ENOTDIR')
      if (victim.dir.count > 0) throw new VfsError('ENOTEMPTY')
    } else if (victim.type === 'dir') {
      throw new VfsError('EISDIR')
    }
  }

  from.dir.delete(src.key)
  if (dst !== undefined && victim !== null) {
    to.dir.delete(dst.key)
    if (victim.type === 'dir') to.nlink--
    table.unlink(victim, now)
  }
  // A new sequence number: a listing of `to` in progress sees the moved entry at most once.
  to.dir.add(toName, moved.id)
  if (moved.type === 'dir' && from !== to) {
    from.nlink--
    to.nlink++
    moved.parent = to.id
  }
  moved.ctime = now
  from.mtime = from.ctime = now
  to.mtime = to.ctime = now
  return { from: { before: fromBefore, after: attrOf(from) }, to: { before: toBefore, after: attrOf(to) } }
}
