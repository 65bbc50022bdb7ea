/*
 * The operations on the names of existing inodes: REMOVE, RMDIR, LINK and RENAME, and freeing an
 * inode whose last name goes. RENAME adds the new name before it drops anything, so a target
 * directory that cannot grow (ENOSPC) fails it with nothing changed.
 */
import { VfsError } from '../../errors.ts'
import { checkNewName, checkOldName } from '../../names.ts'
import type { Attr, Caller, DirChange, FileRef, Timespec } from '../../types.ts'
import { INODE_FLAGS, S_IFMT } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { MetaTxn } from '../txn/txn.ts'
import { fileTypeOf, modeBitsOf } from './attr.ts'
import { decDirLinks, FT_OF, incDirLinks, LINK_MAX } from './dir-links.ts'
import { ROOT_INO } from './engine-core.ts'
import type { EngineCore } from './engine-core.ts'

export async function remove(c: EngineCore, dir: FileRef, name: Buffer): Promise<DirChange> {
  return c.change(async (h) => {
    const { d, hit, inode } = await entry(c, dir, name)
    // unlink(2) on Linux: a directory is EISDIR.
    if ((inode.mode & S_IFMT) === modeBitsOf('dir')) throw new VfsError('EISDIR')
    const before = c.attr(d.ino, d.inode)
    await c.p.dirs.remove(h, d.ino, d.inode, name)
    const now = c.now()
    d.inode.mtime = d.inode.ctime = now
    await c.p.inodes.write(h, d.ino, d.inode)
    await dropLink(c, h, hit.ino, inode, now)
    return { before, after: c.attr(d.ino, d.inode) }
  })
}

export async function rmdir(c: EngineCore, dir: FileRef, name: Buffer): Promise<DirChange> {
  return c.change(async (h) => {
    const { d, hit, inode } = await entry(c, dir, name)
    if ((inode.mode & S_IFMT) !== modeBitsOf('dir')) throw new VfsError('ENOTDIR')
    if (!(await c.p.dirs.isEmpty(hit.ino, inode))) throw new VfsError('ENOTEMPTY')
    const before = c.attr(d.ino, d.inode)
    await c.p.dirs.remove(h, d.ino, d.inode, name)
    const now = c.now()
    decDirLinks(d.inode)
    d.inode.mtime = d.inode.ctime = now
    await c.p.inodes.write(h, d.ino, d.inode)
    await release(c, h, hit.ino, inode, now)
    return { before, after: c.attr(d.ino, d.inode) }
  })
}

export async function link(c: EngineCore, f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
  return c.change(async (h) => {
    h.caller = caller
    const { ino, inode } = await c.get(f)
    // link(2): hard links to directories are EPERM.
    if ((inode.mode & S_IFMT) === modeBitsOf('dir')) throw new VfsError('EPERM', 'hard link to a directory')
    const d = await c.getDir(dir)
    checkNewName(name)
    if ((await c.p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
    if (inode.linksCount >= LINK_MAX) throw new VfsError('EMLINK')
    const before = c.attr(d.ino, d.inode)
    await c.p.dirs.add(h, d.ino, d.inode, name, ino, FT_OF[fileTypeOf(inode.mode) ?? 'file'])
    const now = c.now()
    inode.linksCount++
    inode.ctime = now
    await c.p.inodes.write(h, ino, inode)
    d.inode.mtime = d.inode.ctime = now
    await c.p.inodes.write(h, d.ino, d.inode)
    return { attr: c.attr(ino, inode), dir: { before, after: c.attr(d.ino, d.inode) } }
  })
}

export async function rename(c: EngineCore, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
  return c.change(async (h) => {
    h.caller = caller
    const from = await c.getDir(fromDir)
    const to = from.ino === Number(toDir.id) ? from : await c.getDir(toDir)
    checkOldName(fromName)
    checkNewName(toName)
    const src = await c.p.dirs.find(from.ino, from.inode, fromName)
    if (src === undefined) throw new VfsError('ENOENT')
    const moved = await c.inodeOf(src.ino)
    const movedIsDir = (moved.mode & S_IFMT) === modeBitsOf('dir')
    const fromBefore = c.attr(from.ino, from.inode)
    const toBefore = c.attr(to.ino, to.inode)
    if (movedIsDir && from.ino !== to.ino && (await isWithin(c, to.ino, src.ino))) throw new VfsError('EINVAL', 'rename into own subtree')
    const dst = await c.p.dirs.find(to.ino, to.inode, toName)
    let victim: Inode | undefined
    if (dst !== undefined) {
      // Two names of one object (the same entry, or hard links): POSIX says do nothing.
      if (dst.ino === src.ino) return { from: { before: fromBefore, after: fromBefore }, to: { before: toBefore, after: toBefore } }
      victim = await c.inodeOf(dst.ino)
      const victimIsDir = (victim.mode & S_IFMT) === modeBitsOf('dir')
      if (movedIsDir && !victimIsDir) throw new VfsError('ENOTDIR')
      if (!movedIsDir && victimIsDir) throw new VfsError('EISDIR')
      if (victimIsDir && !(await c.p.dirs.isEmpty(dst.ino, victim))) throw new VfsError('ENOTEMPTY')
    }
    const now = c.now()
    // The new name first: if the target directory cannot grow (ENOSPC) nothing has changed yet.
    if (dst !== undefined && victim !== undefined) {
      await c.p.dirs.remove(h, to.ino, to.inode, toName)
      if ((victim.mode & S_IFMT) === modeBitsOf('dir')) {
        decDirLinks(to.inode)
        await release(c, h, dst.ino, victim, now)
      } else {
        await dropLink(c, h, dst.ino, victim, now)
      }
    }
    await c.p.dirs.add(h, to.ino, to.inode, toName, src.ino, src.fileType)
    await c.p.dirs.remove(h, from.ino, from.inode, fromName)
    if (movedIsDir && from.ino !== to.ino) {
      await c.p.dirs.setParent(h, src.ino, moved, to.ino)
      decDirLinks(from.inode)
      incDirLinks(to.inode)
    }
    moved.ctime = now
    await c.p.inodes.write(h, src.ino, moved)
    from.inode.mtime = from.inode.ctime = now
    to.inode.mtime = to.inode.ctime = now
    await c.p.inodes.write(h, from.ino, from.inode)
    if (to.ino !== from.ino) await c.p.inodes.write(h, to.ino, to.inode)
    return {
      from: { before: fromBefore, after: c.attr(from.ino, from.inode) },
      to: { before: toBefore, after: c.attr(to.ino, to.inode) },
    }
  })
}

/** The existing entry `name` of `dir` (to remove it): the directory, what the entry says, its inode. */
async function entry(c: EngineCore, dir: FileRef, name: Buffer): Promise<{ d: { ino: number; inode: Inode }; hit: { ino: number; fileType: number }; inode: Inode }> {
  const d = await c.getDir(dir)
  checkOldName(name)
  const hit = await c.p.dirs.find(d.ino, d.inode, name)
  if (hit === undefined) throw new VfsError('ENOENT')
  return { d, hit, inode: await c.inodeOf(hit.ino) }
}

/** Is `dirIno` the directory `ancestor` or inside it? Walks `..` up to the root. */
async function isWithin(c: EngineCore, dirIno: number, ancestor: number): Promise<boolean> {
  let cur = dirIno
  for (let depth = 0; depth < 65536; depth++) {
    if (cur === ancestor) return true
    if (cur === ROOT_INO) return false
    const inode = await c.inodeOf(cur, true)
    const up = await c.p.dirs.find(cur, inode, Buffer.from('..'))
    if (up === undefined) throw new VfsError('EIO', `directory ${cur} has no ..`)
    cur = up.ino
  }
  throw new VfsError('EIO', 'directory chain too deep (a loop?)')
}

/** One name fewer for a non-directory; at none, its blocks and inode are freed. */
async function dropLink(c: EngineCore, h: MetaTxn, ino: number, inode: Inode, now: Timespec): Promise<void> {
  inode.ctime = now
  if (inode.linksCount > 1) {
    inode.linksCount--
    await c.p.inodes.write(h, ino, inode)
    return
  }
  await release(c, h, ino, inode, now)
}

/** Free an inode that has no name left (a file's last link, or an empty directory). */
async function release(c: EngineCore, h: MetaTxn, ino: number, inode: Inode, now: Timespec): Promise<void> {
  const isDir = (inode.mode & S_IFMT) === modeBitsOf('dir')
  if (isDir) {
    // A directory's blocks are journaled metadata: revoke them, or a later checkpoint (or replay)
    // of their old contents would overwrite whatever file data the blocks hold next.
    const blocks = Math.ceil(inode.size / c.p.blockSize)
    for (const run of await c.p.files.map(ino, inode, 0, blocks)) {
      if (run.pblk !== 0) for (let i = 0; i < run.len; i++) h.revoke(run.pblk + i)
    }
  }
  if ((inode.flags & INODE_FLAGS.EXTENTS) !== 0) await c.p.files.truncate(h, ino, inode, 0)
  inode.linksCount = 0
  inode.size = 0
  inode.dtime = now.sec
  await c.p.inodes.write(h, ino, inode)
  await c.p.alloc.freeInode(h, ino, isDir)
  c.forgetWrites(ino)
}
