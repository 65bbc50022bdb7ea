/*
 * Setting atime/mtime exactly. Node's utimes takes seconds as a double and
 * libuv 1.46 converts them to a timespec rounded down to the microsecond,
 * and cannot leave one of the two unchanged. So: when a double exists that
 * libuv turns into exactly the wanted timespec (any microsecond-aligned
 * time), fs.utimes on `/proc/self/fd/<O_PATH fd>` does it in one call;
 * otherwise (nanoseconds, the usual case for times copied from another file)
 * `touch -c -a|-m -d @sec.nsec /proc/self/fd/3` in a child given the fd (coreutils, utimensat
 * with ns and UTIME_OMIT) does it, at the cost of a process.
 * The magic link jumps to the pinned object itself, so neither follows a
 * symlink: on a symlink the symlink's own times change.
 */
import { spawn } from 'node:child_process'
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import type { Timespec } from '../types.ts'
import { fdPath, toVfsError, utimes } from './sys.ts'

const NS = 1_000_000_000n

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

/** A double that libuv converts to exactly `t`, or null (sub-microsecond times have none). */
export function exactDouble(t: Timespec): number | null {
  if (t.nsec % 1000 !== 0) return null
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

function fromNs(ns: bigint): Timespec {
  return { sec: Number(ns / NS), nsec: Number(ns % NS) }
}

function nowSeconds(): number {
  return Date.now() / 1000
}

function touch(fd: number, which: '-a' | '-m', t: Timespec | 'now'): Promise<void> {
  const args = ['-c', which]
  if (t !== 'now') args.push('-d', `@${t.sec}.${String(t.nsec).padStart(9, '0')}`)
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

/** Sets the times of the object pinned by `fd` (an O_PATH fd); `st` is its current stat (for a time left unchanged). */
export async function setTimes(fd: number, st: BigIntStats, atime: Timespec | 'now' | undefined, mtime: Timespec | 'now' | undefined): Promise<void> {
  if (atime === undefined && mtime === undefined) return
  const a = atime ?? fromNs(st.atimeNs)
  const m = mtime ?? fromNs(st.mtimeNs)
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
