/*
 * CREATE, MKDIR, SYMLINK and MKNOD on a host directory (RFC 1813
 * §3.3.8-3.3.11). The new object is made by name in the pinned parent
 * (`/proc/self/fd/<dir>/<name>`, never following a symlink: O_CREAT|O_EXCL,
 * mkdir(2), symlink(2), link(2) all refuse an existing name), then pinned
 * and given its owner, mode and times through the pinned fd.
 *
 * Owner: when the server runs as root the object is chowned to the caller
 * (a setgid directory passes on its group, as the kernel does); otherwise
 * it belongs to the server's user. Mode: exactly the requested bits (the
 * process umask does not apply, as for knfsd).
 */
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import type { Attr, CreateMode, Created, Owner, SetAttr, Timespec } from '../types.ts'
import { checkNewName } from '../names.ts'
import { fileType, toAttr } from './attr.ts'
import type { IoFiles } from './io-files.ts'
import type { Pinned, Resolver } from './resolver.ts'
import { applySetAttr, checkSetAttr } from './set-attr.ts'
import { makeSpecial } from './special.ts'
import type { SpecialType } from './special.ts'
import {
  chmodNow, chownNow, closeNow, closeQuietly, codeOf, CREATE_FLAGS, fchmodNow, fchownNow, fdPath, fstatNow, lstatOrNull, mkdir, open, openNow, PIN_FLAGS,
  S_ISGID, symlink, toVfsError,
} from './sys.ts'
import { setTimes } from './times.ts'

export interface LocalCore {
  readonly res: Resolver
  readonly io: IoFiles
  readonly isRoot: boolean
}

/** POSIX PATH_MAX: a longer symlink target is ENAMETOOLONG, as symlink(2) says. */
const PATH_MAX = 4096

type Seen = { readonly id: bigint; readonly gen: number }
const NS = 1_000_000_000n

function ownerOf(core: LocalCore, dirSt: BigIntStats, set: SetAttr, owner: Owner): { uid: number; gid: number } | null {
  if (!core.isRoot) return set.uid === undefined && set.gid === undefined ? null : { uid: set.uid ?? -1, gid: set.gid ?? -1 }
  const inherit = (Number(dirSt.mode) & S_ISGID) !== 0
  return { uid: set.uid ?? owner.uid, gid: set.gid ?? (inherit ? Number(dirSt.gid) : owner.gid) }
}

/** The mode bits a new object should end with; a directory keeps a setgid bit inherited from its parent. */
function wantedMode(requested: number, st: BigIntStats, isDir: boolean): number {
  return (requested & 0o7777) | (isDir ? Number(st.mode) & S_ISGID : 0)
}

/** The id and generation of a new object, recorded under its name; EACCES when it cannot have an id. */
function noteNew(core: LocalCore, d: Pinned, name: Buffer, st: BigIntStats): Seen {
  const seen = core.res.note(d.id, name, st)
  // Made, but its inode number does not fit an id (a crossed device's inode >= 2^47): no handle for it.
  if (seen === null) throw new VfsError('EACCES', 'inode number cannot be exported')
  return seen
}

function created(d: Pinned, before: Attr, st: BigIntStats, seen: Seen): Created {
  let dirAfter: BigIntStats
  try {
    dirAfter = fstatNow(d.fd)
  } catch (err) {
    throw toVfsError(err)
  }
  return { ref: { id: seen.id, gen: seen.gen }, attr: toAttr(st, seen.gen, seen.id), dir: { before, after: toAttr(dirAfter, d.gen, d.id) } }
}

/** Owner, mode and the remaining attributes of a new non-regular object, through an O_PATH fd on it. */
async function finishByPath(core: LocalCore, d: Pinned, name: Buffer, set: SetAttr, owner: Owner, mode: number | null): Promise<{ st: BigIntStats; seen: Seen }> {
  const fd = openNow(fdPath(d.fd, name), PIN_FLAGS)
  try {
    let st = fstatNow(fd)
    const seen = noteNew(core, d, name, st)
    const who = ownerOf(core, d.st, set, owner)
    if (who !== null) chownNow(fdPath(fd), who.uid, who.gid)
    if (mode !== null) {
      st = fstatNow(fd)
      const want = wantedMode(mode, st, fileType(st.mode) === 'dir')
      if ((Number(st.mode) & 0o7777) !== want) chmodNow(fdPath(fd), want)
    }
    if (set.atime !== undefined || set.mtime !== undefined) await setTimes(fd, set.atime, set.mtime)
    return { st: fstatNow(fd), seen }
  } finally {
    closeNow(fd)
  }
}

function verifierTimes(v: Buffer): { atime: Timespec; mtime: Timespec } {
  // As knfsd: the 8-byte verifier lives in atime.sec and mtime.sec, so it survives restarts.
  return { atime: { sec: v.readUInt32BE(0), nsec: 0 }, mtime: { sec: v.readUInt32BE(4), nsec: 0 } }
}

async function existing(core: LocalCore, d: Pinned, name: Buffer, mode: CreateMode, before: Attr): Promise<Created> {
  const st = lstatOrNull(fdPath(d.fd, name))
  if (st === null || fileType(st.mode) !== 'file') throw new VfsError('EEXIST')
  if (mode.how === 'unchecked') {
    // RFC 1813 §3.3.8: UNCHECKED on an existing regular file applies the attributes (size 0 truncates).
    const seen = noteNew(core, d, name, st)
    const p = await core.res.pin({ id: seen.id, gen: seen.gen })
    try {
      return created(d, before, await applySetAttr(core.io, p, mode.attr), seen)
    } finally {
      p.release()
    }
  }
  if (mode.how === 'exclusive') {
    // A retransmitted EXCLUSIVE create finds its own verifier: success with the same file.
    const v = verifierTimes(mode.verifier)
    if (st.atimeNs / NS === BigInt(v.atime.sec) && st.mtimeNs / NS === BigInt(v.mtime.sec)) {
      return created(d, before, st, noteNew(core, d, name, st))
    }
  }
  throw new VfsError('EEXIST')
}

export async function createFile(core: LocalCore, d: Pinned, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
  checkNewName(name)
  const set = mode.how === 'exclusive' ? {} : mode.attr
  checkSetAttr('file', set)
  const before = toAttr(d.st, d.gen, d.id)
  const requested = set.mode ?? 0o644
  let fd: number
  try {
    // In the thread pool: creating a file on ext4 shortly after many deletes takes 100 us to
    // milliseconds (its inode allocator skips recently freed inodes), time the loop can use.
    fd = await open(fdPath(d.fd, name), CREATE_FLAGS, requested & 0o777)
  } catch (err) {
    if (codeOf(err) === 'EEXIST') return existing(core, d, name, mode, before)
    throw toVfsError(err)
  }
  let adopted = false
  try {
    let st = fstatNow(fd)
    const seen = noteNew(core, d, name, st)
    // What the file was made with needs no change: a root caller's file is already root's, and
    // most creates ask the mode open(2) gave. Each change costs a system call and a fresh fstat
    // (its ctime); a create with none answers from the first (bench/README.md, session 43).
    let changed = false
    const who = ownerOf(core, d.st, set, owner)
    if (who !== null && (who.uid !== Number(st.uid) || who.gid !== Number(st.gid))) {
      fchownNow(fd, who.uid, who.gid)
      changed = true
    }
    if ((Number(st.mode) & 0o7777) !== (requested & 0o7777)) {
      fchmodNow(fd, requested & 0o7777)
      changed = true
    }
    if (set.size !== undefined && set.size > 0n) {
      changed = true
      const p = await core.res.pin({ id: seen.id, gen: seen.gen })
      try {
        await applySetAttr(core.io, p, { size: set.size })
      } finally {
        p.release()
      }
    }
    const times = mode.how === 'exclusive' ? verifierTimes(mode.verifier) : { atime: set.atime, mtime: set.mtime }
    if (times.atime !== undefined || times.mtime !== undefined) {
      await setTimes(fd, times.atime, times.mtime)
      changed = true
    }
    if (changed) st = fstatNow(fd)
    core.io.adopt(seen.id, fd, seen.gen)
    adopted = true
    return created(d, before, st, seen)
  } catch (err) {
    throw toVfsError(err)
  } finally {
    if (!adopted) void closeQuietly(fd)
  }
}

export async function makeDir(core: LocalCore, d: Pinned, name: Buffer, set: SetAttr, owner: Owner): Promise<Created> {
  checkNewName(name)
  checkSetAttr('dir', set)
  const before = toAttr(d.st, d.gen, d.id)
  try {
    await mkdir(fdPath(d.fd, name), (set.mode ?? 0o755) & 0o777)
    const { st, seen } = await finishByPath(core, d, name, set, owner, set.mode ?? 0o755)
    return created(d, before, st, seen)
  } catch (err) {
    throw toVfsError(err)
  }
}

export async function makeSymlink(core: LocalCore, d: Pinned, name: Buffer, target: Buffer, set: SetAttr, owner: Owner): Promise<Created> {
  checkNewName(name)
  checkSetAttr('symlink', set)
  // As symlink(2) on Linux: an empty target is ENOENT, one of PATH_MAX bytes or more is ENAMETOOLONG.
  if (target.length === 0) throw new VfsError('ENOENT', 'empty symlink target')
  if (target.length >= PATH_MAX) throw new VfsError('ENAMETOOLONG')
  if (target.includes(0)) throw new VfsError('EINVAL', 'NUL in symlink target')
  const before = toAttr(d.st, d.gen, d.id)
  try {
    await symlink(Buffer.from(target), fdPath(d.fd, name))
    const { st, seen } = await finishByPath(core, d, name, set, owner, null)
    return created(d, before, st, seen)
  } catch (err) {
    throw toVfsError(err)
  }
}

export async function makeNode(
  core: LocalCore,
  d: Pinned,
  name: Buffer,
  type: SpecialType,
  rdev: { major: number; minor: number },
  set: SetAttr,
  owner: Owner,
): Promise<Created> {
  checkNewName(name)
  checkSetAttr(type, set)
  if ((type === 'block' || type === 'char') && !core.isRoot) throw new VfsError('EPERM', 'device nodes need root')
  const before = toAttr(d.st, d.gen, d.id)
  // Refuse an existing name before making anything.
  if (lstatOrNull(fdPath(d.fd, name)) !== null) throw new VfsError('EEXIST')
  try {
    await makeSpecial(d.fd, name, type, rdev)
    const { st, seen } = await finishByPath(core, d, name, set, owner, set.mode ?? 0o644)
    return created(d, before, st, seen)
  } catch (err) {
    throw toVfsError(err)
  }
}
