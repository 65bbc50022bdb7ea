/*
 * The operations that make a new inode and its first name: CREATE, MKDIR, SYMLINK and MKNOD. All
 * checks run before the first change; what can still fail midway (ENOSPC while linking the name)
 * is undone by hand in newChild, as ext4 does, since a journal handle cannot roll back.
 */
import { VfsError } from '../../errors.ts'
import { checkNewName } from '../../names.ts'
import { checkSetAttr } from '../../set-attr-checks.ts'
import type { Attr, CreateMode, Created, FileRef, FileType, Owner, SetAttr } from '../../types.ts'
import { INODE_FLAGS } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { MetaTxn } from '../txn/txn.ts'
import { applyAttrs, encodeRdev, fileTypeOf, modeBitsOf } from './attr.ts'
import { FT_OF, incDirLinks } from './dir-links.ts'
import { PATH_MAX } from './engine-core.ts'
import type { EngineCore } from './engine-core.ts'
import { truncateData, writeData } from './file-io.ts'

/** A symlink target shorter than i_block (60 bytes) lives in the inode ("fast" symlink). */
const FAST_SYMLINK_MAX = 59
const S_ISGID = 0o2000

export async function create(c: EngineCore, dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
  return c.change(async (h) => {
    h.caller = owner.caller ?? owner
    const d = await c.getDir(dir)
    checkNewName(name)
    const hit = await c.p.dirs.find(d.ino, d.inode, name)
    if (hit !== undefined) return createExisting(c, h, d, hit.ino, mode)
    const set = mode.how === 'exclusive' ? {} : mode.attr
    checkSetAttr('file', set)
    const before = c.attr(d.ino, d.inode)
    const made = await newChild(c, h, d, name, 'file', set, owner, async (ino, inode) => {
      if (mode.how === 'exclusive') {
        // As knfsd: the verifier is kept in atime and mtime until the client sets them.
        inode.atime = { sec: mode.verifier.readUInt32BE(0), nsec: 0 }
        inode.mtime = { sec: mode.verifier.readUInt32BE(4), nsec: 0 }
      } else if (set.size !== undefined && set.size > 0n) {
        await truncateData(c.p, h, ino, inode, Number(set.size))
      }
    })
    return { ...made, dir: { before, after: c.attr(d.ino, d.inode) } }
  })
}

export async function mkdir(c: EngineCore, dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
  return c.change(async (h) => {
    h.caller = owner.caller ?? owner
    const d = await c.getDir(dir)
    checkNewName(name)
    checkSetAttr('dir', attr)
    if ((await c.p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
    const before = c.attr(d.ino, d.inode)
    const made = await newChild(c, h, d, name, 'dir', attr, owner, async (ino, inode) => {
      inode.linksCount = 2
      await c.p.dirs.init(h, ino, inode, d.ino)
    })
    incDirLinks(d.inode)
    await c.p.inodes.write(h, d.ino, d.inode)
    return { ...made, dir: { before, after: c.attr(d.ino, d.inode) } }
  })
}

export async function symlink(c: EngineCore, dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
  return c.change(async (h) => {
    h.caller = owner.caller ?? owner
    const d = await c.getDir(dir)
    checkNewName(name)
    checkSetAttr('symlink', attr)
    // As symlink(2) on Linux: empty is ENOENT, PATH_MAX or more is ENAMETOOLONG.
    if (target.length === 0) throw new VfsError('ENOENT', 'empty symlink target')
    if (target.length >= PATH_MAX) throw new VfsError('ENAMETOOLONG')
    if (target.includes(0)) throw new VfsError('EINVAL', 'NUL in symlink target')
    if ((await c.p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
    const before = c.attr(d.ino, d.inode)
    const made = await newChild(c, h, d, name, 'symlink', { ...attr, mode: attr.mode ?? 0o777 }, owner, async (ino, inode) => {
      if (target.length <= FAST_SYMLINK_MAX) {
        inode.flags &= ~INODE_FLAGS.EXTENTS
        inode.block.fill(0)
        target.copy(inode.block)
        inode.size = target.length
      } else {
        await writeData(c.p, h, ino, inode, 0, target)
        inode.size = target.length
      }
    })
    return { ...made, dir: { before, after: c.attr(d.ino, d.inode) } }
  })
}

export async function mknod(
  c: EngineCore, dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo',
  rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner,
): Promise<Created> {
  return c.change(async (h) => {
    h.caller = owner.caller ?? owner
    const d = await c.getDir(dir)
    checkNewName(name)
    checkSetAttr(type, attr)
    if ((await c.p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
    const before = c.attr(d.ino, d.inode)
    const made = await newChild(c, h, d, name, type, attr, owner, (_ino, inode) => {
      // Device numbers live in i_block, which is then no extent tree.
      inode.flags &= ~INODE_FLAGS.EXTENTS
      if (type === 'block' || type === 'char') encodeRdev(inode.block, rdev)
      else inode.block.fill(0)
      return Promise.resolve()
    })
    return { ...made, dir: { before, after: c.attr(d.ino, d.inode) } }
  })
}

/** Allocate, initialise and link a new inode; undone if linking it fails. */
async function newChild(
  c: EngineCore, h: MetaTxn, d: { ino: number; inode: Inode }, name: Buffer, type: FileType, set: SetAttr, owner: Owner,
  init: (ino: number, inode: Inode) => Promise<void>,
): Promise<{ ref: FileRef; attr: Attr }> {
  const isDir = type === 'dir'
  let perm = (set.mode ?? (isDir ? 0o755 : 0o644)) & 0o7777
  let gid = set.gid ?? owner.gid
  // BSD group semantics under a setgid directory, as ext4's inode_init_owner.
  if ((d.inode.mode & S_ISGID) !== 0) {
    if (set.gid === undefined) gid = d.inode.gid
    if (isDir) perm |= S_ISGID
  }
  const now = c.now()
  const ino = await c.p.alloc.allocInode(h, d.ino, isDir)
  const inode = await c.p.inodes.fresh(ino, modeBitsOf(type) | perm, { uid: set.uid ?? owner.uid, gid }, now)
  try {
    await init(ino, inode)
    applyAttrs(inode, { ...(set.atime === undefined ? {} : { atime: set.atime }), ...(set.mtime === undefined ? {} : { mtime: set.mtime }) }, now)
    await c.p.inodes.write(h, ino, inode)
    await c.p.dirs.add(h, d.ino, d.inode, name, ino, FT_OF[type])
  } catch (err) {
    // Give back what was taken: blocks (a slow symlink, a directory's first block) and the inode.
    await c.p.files.truncate(h, ino, inode, 0).catch(() => {})
    inode.linksCount = 0
    inode.dtime = now.sec
    await c.p.inodes.write(h, ino, inode).catch(() => {})
    await c.p.alloc.freeInode(h, ino, isDir).catch(() => {})
    throw err
  }
  d.inode.mtime = d.inode.ctime = now
  await c.p.inodes.write(h, d.ino, d.inode)
  return { ref: c.ref(ino, inode), attr: c.attr(ino, inode) }
}

async function createExisting(c: EngineCore, h: MetaTxn, d: { ino: number; inode: Inode }, ino: number, mode: CreateMode): Promise<Created> {
  const inode = await c.inodeOf(ino)
  const isFile = fileTypeOf(inode.mode) === 'file'
  const dirAttr = c.attr(d.ino, d.inode)
  const created = (): Created => ({ ref: c.ref(ino, inode), attr: c.attr(ino, inode), dir: { before: dirAttr, after: dirAttr } })
  // RFC 1813 §3.3.8: UNCHECKED on a regular file applies the attributes (size 0 truncates).
  if (mode.how === 'unchecked' && isFile) {
    checkSetAttr('file', mode.attr)
    const now = c.now()
    if (mode.attr.size !== undefined && Number(mode.attr.size) !== inode.size) {
      await c.flights.settled(ino)
      await truncateData(c.p, h, ino, inode, Number(mode.attr.size))
      inode.mtime = now
    }
    applyAttrs(inode, mode.attr, now)
    inode.ctime = now
    await c.p.inodes.write(h, ino, inode)
    return created()
  }
  // A retransmitted EXCLUSIVE create finds its own verifier in the times: success.
  if (mode.how === 'exclusive' && isFile && inode.atime.sec === mode.verifier.readUInt32BE(0) && inode.mtime.sec === mode.verifier.readUInt32BE(4)) {
    return created()
  }
  throw new VfsError('EEXIST')
}
