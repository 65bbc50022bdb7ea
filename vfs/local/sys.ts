/*
 * The system calls the local backend uses, over raw fds, and the one errno
 * mapping.
 *
 * Short calls are synchronous (the *Now functions): fstat, lstat, open of a
 * pinned or O_PATH object, fchown/fchmod (and chown/chmod of an O_PATH fd's
 * magic link), and unlink/close where they free
 * nothing large. On a local file system they take 1-4 us, while each trip
 * through libuv's thread pool costs 10-20 us of hand-off and wake-up on a
 * small VM (LIMITS.md: it halves GETATTR-shaped throughput). Calls that may
 * wait on the disk stay asynchronous: fsync, READ data, creating a file
 * (ext4 is slow right after many deletes), reading whole directories, and
 * the unlink or close that frees a large file. WRITEs are synchronous while
 * they are fast (sync-gate.ts). The price: an export on a host directory that
 * is itself a hung network mount would block the event loop in a stat
 * (README, limits).
 *
 * Node has no openat(2); `/proc/self/fd/<dirfd>/<name>` stands in for it:
 * the kernel resolves the magic link to exactly the directory the fd holds
 * (not through any symlink on the way) and then looks `name` up in it. Every
 * path we build has that shape, as a Buffer, so non-UTF-8 names round-trip
 * byte for byte.
 */
import fs from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { promisify } from 'node:util'
import { VfsError } from '../errors.ts'
import { nativeIo } from '../native-io.ts'
import type { Errno } from '../errors.ts'

const c = fs.constants
/** Linux O_PATH (not in fs.constants): a handle on the inode itself, no read/write access, no side effects. */
export const O_PATH = 0o10000000
/** Pin an object without following a symlink and without opening it for I/O. */
export const PIN_FLAGS = O_PATH | c.O_NOFOLLOW
export const PIN_DIR_FLAGS = O_PATH | c.O_NOFOLLOW | c.O_DIRECTORY
/** Create flags: never through a symlink, never blocking on a FIFO. */
export const CREATE_FLAGS = c.O_CREAT | c.O_EXCL | c.O_RDWR | c.O_NOFOLLOW | c.O_NONBLOCK

export const S_IFMT = c.S_IFMT
export const S_ISGID = 0o2000

const SELF = Buffer.from('/proc/self/fd/')

/** `/proc/self/fd/<fd>` or `/proc/self/fd/<fd>/<name>`: openat(fd, name) for path-taking APIs. */
export function fdPath(fd: number, name?: Buffer): Buffer {
  const head = Buffer.from(`${fd}`)
  if (name === undefined) return Buffer.concat([SELF, head])
  return Buffer.concat([SELF, head, Buffer.from('/'), name])
}

/** `/proc/self/fd/<fd>/`, to name many children of one directory with childPath. */
export function dirPrefix(fd: number): Buffer {
  return Buffer.from(`/proc/self/fd/${fd}/`)
}

/** `<prefix><name>`: fdPath(fd, name) for a prefix from dirPrefix(fd). */
export function childPath(prefix: Buffer, name: Buffer): Buffer {
  const b = Buffer.allocUnsafe(prefix.length + name.length)
  prefix.copy(b, 0)
  name.copy(b, prefix.length)
  return b
}

/** The same, for a child process (its /proc/self is its own). */
export function pidFdPath(fd: number, name?: string): string {
  return `/proc/${process.pid}/fd/${fd}${name === undefined ? '' : `/${name}`}`
}

const pOpen = promisify(fs.open)
const pClose = promisify(fs.close)
const pFstat = promisify(fs.fstat)
const pLstat = promisify(fs.lstat)

export function open(path: Buffer, flags: number, mode?: number): Promise<number> {
  return pOpen(path, flags, mode)
}

export function fstat(fd: number): Promise<BigIntStats> {
  return pFstat(fd, { bigint: true })
}

export function lstat(path: Buffer): Promise<BigIntStats> {
  return pLstat(path, { bigint: true })
}

export async function closeQuietly(fd: number): Promise<void> {
  try {
    await pClose(fd)
  } catch {
    // Nothing to do about a failed close of an fd we no longer use.
  }
}

/** fstat(2) now, on the calling thread (an fd we hold: no path lookup, no waiting on the disk). */
export function fstatNow(fd: number): BigIntStats {
  return fs.fstatSync(fd, { bigint: true })
}

/** lstat(2) now; an fs error (ENOENT too) throws. */
export function lstatNow(path: Buffer): BigIntStats {
  return fs.lstatSync(path, { bigint: true })
}

/** lstat(2) now, or null when it fails for any reason (the name is gone, or not ours to see). */
export function lstatOrNull(path: Buffer): BigIntStats | null {
  try {
    return fs.lstatSync(path, { bigint: true, throwIfNoEntry: false }) ?? null
  } catch {
    return null
  }
}

/** open(2) now: for O_PATH pins and reopening a pinned inode, which never create or truncate anything. */
export function openNow(path: Buffer, flags: number): number {
  return fs.openSync(path, flags)
}

/** fchown(2) and fchmod(2) now: inode changes in memory, a few microseconds. */
export function fchownNow(fd: number, uid: number, gid: number): void {
  fs.fchownSync(fd, uid, gid)
}

export function fchmodNow(fd: number, mode: number): void {
  fs.fchmodSync(fd, mode)
}

/**
 * chown(2) and chmod(2) now, by a `/proc/self/fd/<O_PATH fd>` path (fchown
 * and fchmod refuse an O_PATH fd): the same inode change in memory as the
 * f-calls, plus a lookup of the magic link. Through the thread pool each
 * cost a hand-off and a wake-up of 50-250 us on the 2-vCPU VM under load,
 * most of a SETATTR of mode on this backend (bench/README.md, session 34).
 */
export function chownNow(path: Buffer, uid: number, gid: number): void {
  fs.chownSync(path, uid, gid)
}

export function chmodNow(path: Buffer, mode: number): void {
  fs.chmodSync(path, mode)
}

/** unlink(2) now: only for a name whose file keeps its data or has little (the data is freed at the last unlink or close). */
export function unlinkNow(path: Buffer): void {
  fs.unlinkSync(path)
}

/** close(2) now: only for an fd on an object that cannot be an unlinked large file (a new non-regular object). */
export function closeNow(fd: number): void {
  try {
    fs.closeSync(fd)
  } catch {
    // Nothing to do about a failed close of an fd we no longer use.
  }
}

export const readdirNames = (path: Buffer): Promise<Buffer[]> => fs.promises.readdir(path, { encoding: 'buffer' })
export const readlinkBytes = (path: Buffer): Promise<Buffer> => fs.promises.readlink(path, { encoding: 'buffer' })
export const mkdir = (path: Buffer, mode: number): Promise<unknown> => fs.promises.mkdir(path, { mode })
export const { symlink, link, unlink, rmdir, rename, chmod, chown, utimes } = fs.promises
export const fsync = promisify(fs.fsync)
export const fdatasync = promisify(fs.fdatasync)
export const ftruncate = promisify(fs.ftruncate)
export const fchown = promisify(fs.fchown)
export const fchmod = promisify(fs.fchmod)
export const futimes = promisify(fs.futimes)

const MAX_POS = BigInt(Number.MAX_SAFE_INTEGER)

/** Node's fs.write ignores a bigint position (it writes at the file offset!): positions go as numbers. */
function position(pos: bigint): number {
  if (pos < 0n || pos > MAX_POS) throw new VfsError('EFBIG', 'offset beyond 2^53')
  return Number(pos)
}

const noWait = nativeIo()
/** Larger reads stay on the thread pool: their copy is the cost, and there it runs beside the event loop. */
const NO_WAIT_MAX = 64 * 1024

export function pread(fd: number, buf: Buffer, pos: bigint): Promise<number> {
  // Nothing any Linux file system stores lies beyond 2^53.
  if (pos > MAX_POS) return Promise.resolve(0)
  // What the page cache holds, at once (a few µs against a thread-pool round trip of 15-20 µs of
  // CPU here); -EAGAIN (not cached) or any error: the asynchronous read below, which waits or reports.
  if (noWait !== null && buf.length <= NO_WAIT_MAX && pos >= 0n) {
    const n = noWait.readNoWait(fd, buf, 0, buf.length, Number(pos))
    if (n >= 0) return Promise.resolve(n)
  }
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, buf.length, position(pos), (err, n) => {
      if (err === null) resolve(n)
      else reject(err)
    })
  })
}

export function pwrite(fd: number, buf: Buffer, pos: bigint): Promise<number> {
  const at = position(pos)
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, 0, buf.length, at, (err, n) => {
      if (err === null) resolve(n)
      else reject(err)
    })
  })
}

/** pwrite(2) now, on the calling thread (file-io.ts decides when: sync-gate.ts). */
export function pwriteNow(fd: number, buf: Buffer, pos: bigint): number {
  return fs.writeSync(fd, buf, 0, buf.length, position(pos))
}

/** Appends/writes all of `data` at the fd's offset (O_APPEND logs, fresh files). */
export async function writeAll(fd: number, data: Buffer): Promise<void> {
  let off = 0
  while (off < data.length) {
    off += await new Promise<number>((resolve, reject) => {
      fs.write(fd, data, off, data.length - off, null, (err, n) => {
        if (err === null) resolve(n)
        else reject(err)
      })
    })
  }
}

export function statfs(path: Buffer): Promise<fs.BigIntStatsFs> {
  // statfs takes a string or Buffer path at run time; the typings only say PathLike.
  return fs.promises.statfs(path, { bigint: true })
}

const PASS: ReadonlySet<string> = new Set<Errno>([
  'EPERM', 'ENOENT', 'EIO', 'ENXIO', 'EACCES', 'EEXIST', 'EXDEV', 'ENODEV', 'ENOTDIR', 'EISDIR', 'EINVAL', 'EFBIG',
  'ENOSPC', 'EROFS', 'EMLINK', 'ENAMETOOLONG', 'ENOTEMPTY', 'EDQUOT', 'ESTALE', 'ENOTSUP', 'ELOOP', 'EBADF', 'EAGAIN', 'EBUSY',
])
const MAPPED: Readonly<Record<string, Errno>> = {
  EOPNOTSUPP: 'ENOTSUP',
  ETXTBSY: 'EBUSY',
  EMFILE: 'EAGAIN',
  ENFILE: 'EAGAIN',
  ENOMEM: 'EAGAIN',
  EOVERFLOW: 'EFBIG',
  EWOULDBLOCK: 'EAGAIN',
}

/** A Node fs error as the VfsError with the same errno; anything unknown is EIO (keeping the cause). */
export function toVfsError(err: unknown): VfsError {
  if (err instanceof VfsError) return err
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string') {
    if (PASS.has(code)) return new VfsError(code as Errno, undefined, { cause: err })
    const mapped = MAPPED[code]
    if (mapped !== undefined) return new VfsError(mapped, code, { cause: err })
  }
  return new VfsError('EIO', err instanceof Error ? err.message : 'unexpected error', { cause: err })
}

export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
