/*
 * Setting atime/mtime exactly, to the nanosecond, on the object a pinned fd
 * holds. Node's utimes takes seconds as a double, which libuv truncates to
 * the microsecond, and it cannot leave one of the two times unchanged. So
 * the native helper (native-times.ts: utimensat with nanoseconds and
 * UTIME_OMIT, on the /proc/self/fd/<fd> magic link) does it in one system
 * call on the event loop. Without the helper (not built, or not loadable)
 * the older way remains: fs.utimes when a double exists that libuv turns
 * into exactly the wanted timespec (any microsecond-aligned time), else
 * `touch -c -a|-m -d @sec.nsec /proc/self/fd/3` in a child given the fd
 * (coreutils: utimensat with ns and UTIME_OMIT), at the cost of a process
 * (~10 ms).
 * Either way the magic link jumps to the pinned object itself, so nothing
 * follows a symlink: on a symlink the symlink's own times change.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { VfsError } from '../errors.ts'
import type { Timespec } from '../types.ts'
import { nativeTimes } from './native-times.ts'
import type { NativeTimes } from './native-times.ts'
import { fdPath, fstatNow, toVfsError, utimes } from './sys.ts'

const NS = 1_000_000_000n

type TimeArg = Timespec | 'now' | undefined

/** What libuv's uv__fs_to_timespec makes of a double. */
function libuvTimespec(d: number): Timespec {
  let sec = Math.trunc(d)
  let nsec = Math.trunc((d - sec) * 1e9)
  nsec -= nsec % 1000
  if (nsec < 0) {
    nsec += 1e9
    sec -= 1
  }
  return { sec, nsec }
}

const f64 = new Float64Array(1)
const i64 = new BigInt64Array(f64.buffer)

/**
 * A double that libuv converts to exactly `t`, or null: sub-microsecond times
 * have none, and Node's fs.utimes takes any negative number for "now"
 * (toUnixTimestamp), so a time before 1970 has none either.
 */
export function exactDouble(t: Timespec): number | null {
  if (t.nsec % 1000 !== 0 || t.sec < 0) return null
  f64[0] = t.sec + t.nsec / 1e9
  const base = i64[0] ?? 0n
  for (let k = -8n; k <= 8n; k++) {
    i64[0] = base + k
    const d = f64[0]
    const got = libuvTimespec(d)
    if (got.sec === t.sec && got.nsec === t.nsec) return d
  }
  return null
}

/** Nanoseconds since 1970 as a Timespec; before 1970 the seconds round down so that nsec stays in [0, 1e9). */
export function fromNs(ns: bigint): Timespec {
  const rem = ((ns % NS) + NS) % NS
  return { sec: Number((ns - rem) / NS), nsec: Number(rem) }
}

function nowSeconds(): number {
  return Date.now() / 1000
}

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]))

/** The errno the helper returned, as the VfsError sys.ts would make of a Node fs error. */
function errnoError(errno: number): VfsError {
  const code = ERRNO_NAMES.get(errno) ?? 'EIO'
  return toVfsError(Object.assign(new Error(`utimensat: ${code}`), { code, errno: -errno, syscall: 'utimensat' }))
}

/** One utimensat through the helper: a time left undefined is UTIME_OMIT, 'now' UTIME_NOW. */
export function setTimesNative(n: NativeTimes, fd: number, atime: TimeArg, mtime: TimeArg): void {
  const sec = (t: TimeArg): number => (t === undefined || t === 'now' ? 0 : t.sec)
  const nsec = (t: TimeArg): number => (t === undefined ? n.UTIME_OMIT : t === 'now' ? n.UTIME_NOW : t.nsec)
  const errno = n.setTimes(fd, sec(atime), nsec(atime), sec(mtime), nsec(mtime))
  if (errno !== 0) throw errnoError(errno)
}

/** t as the decimal number of seconds touch -d @N reads: {-316, 750000000} is -315.250000000. */
export function decimalSeconds(t: Timespec): string {
  if (t.sec >= 0 || t.nsec === 0) return `${t.sec}.${String(t.nsec).padStart(9, '0')}`
  return `-${-(t.sec + 1)}.${String(1e9 - t.nsec).padStart(9, '0')}`
}

function touch(fd: number, which: '-a' | '-m', t: Timespec | 'now'): Promise<void> {
  const args = ['-c', which]
  if (t !== 'now') args.push('-d', `@${decimalSeconds(t)}`)
  // The child gets its own copy of the pinned fd as its fd 3 and names it through its own
  // /proc/self: a path into our /proc/<pid>/fd would name whatever object holds that fd
  // number when the child gets to it (found by rsync on the FUSE mount: times landing on
  // the wrong object), and with -c a vanished path succeeds silently.
  args.push('/proc/self/fd/3')
  return new Promise((resolve, reject) => {
    const child = spawn('touch', args, { stdio: ['ignore', 'ignore', 'pipe', fd], timeout: 10_000 })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    child.on('error', (err) => {
      reject(new VfsError(codeFrom(err) ?? 'EIO', `touch: ${err.message}`, { cause: err }))
    })
    child.on('close', (code) => {
      if (code === 0) resolve()
      else reject(new VfsError(codeFrom(new Error(stderr)) ?? 'EIO', `touch: exit ${String(code)}: ${stderr.trim()}`))
    })
  })
}

function codeFrom(err: Error): 'EPERM' | 'EACCES' | 'ENOTSUP' | null {
  if (/Operation not permitted/.test(err.message)) return 'EPERM'
  if (/Permission denied/.test(err.message)) return 'EACCES'
  if ((err as { code?: unknown }).code === 'ENOENT') return 'ENOTSUP'
  return null
}

/** Without the helper: fs.utimes when both times are microsecond-exact, else touch(1) once per time. */
export async function setTimesFallback(fd: number, atime: TimeArg, mtime: TimeArg): Promise<void> {
  if (atime === undefined && mtime === undefined) return
  const st = atime === undefined || mtime === undefined ? fstatNow(fd) : null
  const a = atime ?? fromNs(st?.atimeNs ?? 0n)
  const m = mtime ?? fromNs(st?.mtimeNs ?? 0n)
  // 'now' needs no exactness: any double is fine for it.
  const da = a === 'now' ? nowSeconds() : exactDouble(a)
  const dm = m === 'now' ? nowSeconds() : exactDouble(m)
  if (da !== null && dm !== null) {
    try {
      await utimes(fdPath(fd), da, dm)
      return
    } catch (err) {
      throw toVfsError(err)
    }
  }
  if (atime !== undefined) await touch(fd, '-a', atime)
  if (mtime !== undefined) await touch(fd, '-m', mtime)
}

/** Sets the times of the object held by `fd` (an O_PATH pin or an open file); undefined leaves a time unchanged. */
export async function setTimes(fd: number, atime: TimeArg, mtime: TimeArg): Promise<void> {
  if (atime === undefined && mtime === undefined) return
  const n = nativeTimes()
  if (n !== null) setTimesNative(n, fd, atime, mtime)
  else await setTimesFallback(fd, atime, mtime)
}
