/*
 * CREATE, MKDIR, SYMLINK and MKNOD on the memory backend (RFC 1813
 * §3.3.8-3.3.11): every check runs before anything is allocated, so a
 * failure leaves the tree as it was.
 */
import { VfsError } from '../errors.ts'
import type { Attr, CreateMode, Created, FileRef, Owner, SetAttr, Timespec } from '../types.ts'
import { nameKey } from './directory.ts'
import { attrOf } from './inode.ts'
import type { DirInode, Inode, NodeInode } from './inode.ts'
import type { InodeTable } from './inode-table.ts'
import { checkNewName } from '../names.ts'
import { ownCopy } from './own-copy.ts'
import { applySetAttr, checkSetAttr } from './set-attr.ts'

/** pathconf linkmax: links to one file, and subdirectories of one directory. */
export const LINK_MAX = 32000
/** POSIX PATH_MAX: a longer symlink target is ENAMETOOLONG, as on Linux. */
const PATH_MAX = 4096

/** The checks every new entry passes: a directory, a valid unused name, applicable attributes. */
export function prepareNew(table: InodeTable, dir: FileRef, name: Buffer, type: Inode['type'] | null, attr: SetAttr): DirInode {
  const d = table.getDir(dir)
  checkNewName(name)
  if (d.dir.get(nameKey(name)) !== undefined) throw new VfsError('EEXIST')
  if (type !== null) checkSetAttr(type, attr)
  return d
}

export function insertEntry(d: DirInode, name: Buffer, ino: Inode, now: Timespec): void {
  // The name is a view into a network record: keep our own copy.
  d.dir.add(name, ino.id)
  d.mtime = now
  d.ctime = now
}

function created(ino: Inode, before: Attr, d: DirInode): Created {
  return { ref: { id: ino.id, gen: ino.gen }, attr: attrOf(ino), dir: { before, after: attrOf(d) } }
}

/** The new object's owner: the caller's, unless the create attributes name a uid or gid. */
function ownerOf(set: SetAttr, owner: Owner): Owner {
  return { uid: set.uid ?? owner.uid, gid: set.gid ?? owner.gid }
}

/** Size and times from the create attributes; mode, uid and gid were used at allocation. */
function applyRest(table: InodeTable, ino: Inode, set: SetAttr, now: Timespec): void {
  if (set.size !== undefined || set.atime !== undefined || set.mtime !== undefined) {
    applySetAttr(table, ino, set, now)
  }
}

export function createFile(
  table: InodeTable,
  now: Timespec,
  dir: FileRef,
  name: Buffer,
  mode: CreateMode,
  owner: Owner,
): Created {
  const d = table.getDir(dir)
  checkNewName(name)
  const existing = d.dir.get(nameKey(name))
  if (existing !== undefined) {
    const ino = table.byId(existing.id)
    // RFC 1813 §3.3.8: UNCHECKED on a regular file applies the attributes (size 0 truncates).
    if (mode.how === 'unchecked' && ino.type === 'file') {
      checkSetAttr(ino.type, mode.attr)
      applySetAttr(table, ino, mode.attr, now)
      return created(ino, attrOf(d), d)
    }
    // A retransmitted EXCLUSIVE create finds its own verifier: success with the same file.
    if (mode.how === 'exclusive' && ino.type === 'file' && ino.verifier?.equals(mode.verifier) === true) {
      return created(ino, attrOf(d), d)
    }
    throw new VfsError('EEXIST')
  }
  const set = mode.how === 'exclusive' ? {} : mode.attr
  checkSetAttr('file', set)
  const before = attrOf(d)
  const file = table.newFile(set.mode ?? 0o644, ownerOf(set, owner), now)
  // Kept with the file (a copy: the argument is a view into the request).
  if (mode.how === 'exclusive') file.verifier = ownCopy(mode.verifier)
  applyRest(table, file, set, now)
  insertEntry(d, name, file, now)
  return created(file, before, d)
}

export function makeDir(table: InodeTable, now: Timespec, dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Created {
  const d = prepareNew(table, dir, name, 'dir', attr)
  if (d.nlink >= LINK_MAX) throw new VfsError('EMLINK')
  const before = attrOf(d)
  const sub = table.newDir(attr.mode ?? 0o755, ownerOf(attr, owner), now, d.id)
  applyRest(table, sub, attr, now)
  insertEntry(d, name, sub, now)
  d.nlink++
  return created(sub, before, d)
}

export function makeSymlink(
  table: InodeTable,
  now: Timespec,
  dir: FileRef,
  name: Buffer,
  target: Buffer,
  attr: SetAttr,
  owner: Owner,
): Created {
  const d = prepareNew(table, dir, name, 'symlink', attr)
  // As symlink(2) on Linux: an empty target is ENOENT, one of PATH_MAX bytes or more is ENAMETOOLONG.
  if (target.length === 0) throw new VfsError('ENOENT', 'empty symlink target')
  if (target.length >= PATH_MAX) throw new VfsError('ENAMETOOLONG')
  if (target.includes(0)) throw new VfsError('EINVAL', 'NUL in symlink target')
  const before = attrOf(d)
  const link = table.newSymlink(target, attr.mode ?? 0o777, ownerOf(attr, owner), now)
  applyRest(table, link, attr, now)
  insertEntry(d, name, link, now)
  return created(link, before, d)
}

export function makeNode(
  table: InodeTable,
  now: Timespec,
  dir: FileRef,
  name: Buffer,
  type: NodeInode['type'],
  rdev: { major: number; minor: number },
  attr: SetAttr,
  owner: Owner,
): Created {
  const d = prepareNew(table, dir, name, type, attr)
  const before = attrOf(d)
  // Only device nodes carry a device number (RFC 1813 §3.3.11 mknoddata3).
  const devRdev = type === 'block' || type === 'char' ? rdev : { major: 0, minor: 0 }
  const node = table.newNode(type, devRdev, attr.mode ?? 0o644, ownerOf(attr, owner), now)
  applyRest(table, node, attr, now)
  insertEntry(d, name, node, now)
  return created(node, before, d)
}
