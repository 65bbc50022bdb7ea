/*
 * REMOVE, RMDIR, RENAME and LINK (RFC 1813 §3.3.12-3.3.15) by name in
 * pinned directories: the kernel's own rename(2)/unlink(2)/rmdir(2)/link(2)
 * on `/proc/self/fd/<dir>/<name>` give POSIX semantics (EINVAL for a
 * directory into its own subtree, ENOTEMPTY, EISDIR, EXDEV) and never
 * follow a symlink in the last component. The index follows each change,
 * so handles of renamed objects (and everything below them) keep working.
 */
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import { checkNewName, checkOldName } from '../names.ts'
import type { Attr, DirChange } from '../types.ts'
import { fileType, isSmall, toAttr } from './attr.ts'
import type { Pinned, Resolver } from './resolver.ts'
import { fdPath, fstatNow, link, lstatNow, lstatOrNull, rename, rmdir, toVfsError, unlink, unlinkNow } from './sys.ts'

/** What the backend does about the objects a change touched. */
export interface Effects {
  /**
   * The object's last link is gone through us: drop its index entry and cached fds. Resolves when
   * those fds are closed, so the space is free when the reply goes (knfsd closes its cached files
   * before an unlink returns for the same reason: a CREATE right after must not find the disk full).
   */
  gone(st: BigIntStats): Promise<void>
  /** The object changed (links, ctime): attributes cached before are not used (attr-cache.ts). */
  touched(st: BigIntStats): void
}

async function call<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    throw toVfsError(err)
  }
}

function now<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw toVfsError(err)
  }
}

function change(d: Pinned): DirChange {
  return { before: toAttr(d.st, d.gen, d.id), after: toAttr(now(() => fstatNow(d.fd)), d.gen, d.id) }
}

export async function removeEntry(d: Pinned, name: Buffer, fx: Effects): Promise<DirChange> {
  checkOldName(name)
  const st = now(() => lstatNow(fdPath(d.fd, name)))
  // unlink(2) on Linux: a directory is EISDIR.
  if (fileType(st.mode) === 'dir') throw new VfsError('EISDIR')
  // The last unlink of a large file may free its data (milliseconds): that one in the thread pool.
  if (isSmall(st) || st.nlink > 1n) {
    now(() => {
      unlinkNow(fdPath(d.fd, name))
    })
  }
  else await call(unlink(fdPath(d.fd, name)))
  fx.touched(st)
  if (st.nlink <= 1n) await fx.gone(st)
  return change(d)
}

export async function rmdirEntry(d: Pinned, name: Buffer, fx: Effects): Promise<DirChange> {
  checkOldName(name)
  const st = now(() => lstatNow(fdPath(d.fd, name)))
  if (fileType(st.mode) !== 'dir') throw new VfsError('ENOTDIR')
  await call(rmdir(fdPath(d.fd, name)))
  fx.touched(st)
  await fx.gone(st)
  return change(d)
}

export async function renameEntry(
  res: Resolver,
  from: Pinned,
  fromName: Buffer,
  to: Pinned,
  toName: Buffer,
  fx: Effects,
): Promise<{ from: DirChange; to: DirChange }> {
  checkOldName(fromName)
  checkNewName(toName)
  const src = now(() => lstatNow(fdPath(from.fd, fromName)))
  const dst = lstatOrNull(fdPath(to.fd, toName))
  try {
    await rename(fdPath(from.fd, fromName), fdPath(to.fd, toName))
  } catch (err) {
    // "ENOTEMPTY or EEXIST: newpath is a nonempty directory" (rename(2)); say it one way.
    throw toVfsError((err as { code?: unknown }).code === 'EEXIST' ? new VfsError('ENOTEMPTY') : err)
  }
  // Both names are on one file system (rename(2) is EXDEV otherwise), so inode numbers compare.
  res.note(to.id, toName, src)
  fx.touched(src)
  if (dst !== null) fx.touched(dst)
  if (dst !== null && dst.ino !== src.ino && (fileType(dst.mode) === 'dir' || dst.nlink <= 1n)) await fx.gone(dst)
  return { from: change(from), to: change(to) }
}

export async function linkEntry(res: Resolver, p: Pinned, d: Pinned, name: Buffer): Promise<{ attr: Attr; dir: DirChange }> {
  checkNewName(name)
  // link(2) does not follow /proc/self/fd magic links: link by the file's name in its parent.
  const { parent, name: oldName } = await res.entryOf(p)
  try {
    await call(link(fdPath(parent.fd, oldName), fdPath(d.fd, name)))
  } finally {
    parent.release()
  }
  return { attr: toAttr(now(() => fstatNow(p.fd)), p.gen, p.id), dir: change(d) }
}
