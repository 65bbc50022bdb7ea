/*
 * One lock file across processes: an image opened read-write (vfs/engine/blockdev/image-lock.ts),
 * a tape being written or read (backup/tape-lock.ts), a pool's or a catalog's read-modify-write
 * (dma/pool/lock.ts). Node has no flock(2) or fcntl locks without a native module, so the lock is
 * a file that names its holder: pid, the process's start time (field 22 of /proc/<pid>/stat, so a
 * reused pid — pid 1 in a restarted container — is not mistaken for the old holder), the boot id,
 * the host, what it holds the lock for and since when.
 *
 * - Taking: the content is written to a private file first, then link(2)ed to the lock's name,
 *   which fails with EEXIST if the name exists (atomic on a local file system, and over NFSv3,
 *   where LINK is one RPC). An O_EXCL create followed by a write could leave an empty lock behind
 *   a crash, which no one could judge.
 * - A holder that is gone (this host, and another boot, no such pid, or another start time) left a
 *   stale lock, which the next taker breaks under a second exclusive file (LOCK.break) after
 *   reading the lock again, so of several takers racing for one stale lock only one breaks it and
 *   none removes a fresh lock someone took meanwhile. A break file left by a crash is old: removed
 *   after STALE_BREAK_MS.
 * - A lock that does not parse (an older writer's, or one left empty by an O_EXCL writer that died)
 *   is held until it is `unreadableStaleMs` old (by default never taken over: a human looks).
 * - A lock written by another host is never judged stale (remove it by hand once that host is down).
 * - Release removes the lock only if it still holds our content (a nonce makes it unique).
 *
 * The callers keep their own file format (LockFormat: the image lock's line, the tape lock's JSON)
 * so that locks written by an older version are still read, and their own error texts (they turn
 * LockBusyError into theirs).
 */
import { randomBytes } from 'node:crypto'
import { link, open, readFile, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

/** A break file older than this was left by a taker that died while breaking a stale lock. */
const STALE_BREAK_MS = 10_000
/** Rounds of take / judge / break before giving up on a lock changing hands under us. */
const ROUNDS = 5
/** Pause while another taker breaks a stale lock, or between looks at a held lock when waiting. */
const RETRY_MS = 20

export interface LockHolder {
  pid: number
  /** Start time of `pid` in clock ticks since boot, or '' where unknown (no /proc, older writer). */
  start: string
  /** /proc/sys/kernel/random/boot_id, or ''. */
  boot: string
  host: string
  purpose: string
  /** ISO time the lock was taken, or ''. */
  since: string
  nonce: string
}

/** How a caller writes and reads its lock file. decode returns null for a file that is not a lock. */
export interface LockFormat {
  encode(holder: LockHolder): string
  decode(text: string): LockHolder | null
}

/** The default format: one JSON object and a newline. Fields an older writer left out read as ''. */
export const JSON_LOCK_FORMAT: LockFormat = {
  encode: (h) => `${JSON.stringify(h)}\n`,
  decode: (text) => {
    let v: unknown
    try {
      v = JSON.parse(text)
    } catch {
      return null
    }
    if (typeof v !== 'object' || v === null) return null
    const o = v as Record<string, unknown>
    if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0 || typeof o.host !== 'string') return null
    const str = (x: unknown): string => (typeof x === 'string' ? x : '')
    return { pid: o.pid, host: o.host, start: str(o.start), boot: str(o.boot), purpose: str(o.purpose), since: str(o.since), nonce: str(o.nonce) }
  },
}

/**
 * The lock is held by someone else. `holder` is null for a lock file that does not parse
 * (reason 'unreadable'), or when it changed hands ROUNDS times while we tried (reason 'racing').
 */
export class LockBusyError extends Error {
  readonly code = 'LOCK_BUSY'
  readonly path: string
  readonly reason: 'held' | 'unreadable' | 'racing'
  readonly holder: LockHolder | null
  constructor(path: string, reason: 'held' | 'unreadable' | 'racing', holder: LockHolder | null) {
    const who = holder === null ? reason : `process ${holder.pid} on ${holder.host}${holder.purpose === '' ? '' : ` (${holder.purpose})`}`
    super(`${path} is held by ${who}`)
    this.name = 'LockBusyError'
    this.path = path
    this.reason = reason
    this.holder = holder
  }
}

export interface LockFile {
  readonly path: string
  readonly holder: LockHolder
  /** Removes the lock if it still holds our content; never throws. */
  release(): Promise<void>
}

export interface LockOptions {
  /** Said to a second taker (and kept in the file). */
  purpose?: string
  format?: LockFormat
  /** Wait up to this long for a live holder to release; 0 (the default) fails at once. */
  waitMs?: number
  /** An unparsable lock older than this is taken over; never by default. */
  unreadableStaleMs?: number
}

/** Takes the lock file at `path`, or throws LockBusyError (other errors: the file system's). */
export async function acquireLockFile(path: string, options: LockOptions = {}): Promise<LockFile> {
  const format = options.format ?? JSON_LOCK_FORMAT
  const me = await selfHolder(options.purpose ?? '')
  const text = format.encode(me)
  const deadline = Date.now() + (options.waitMs ?? 0)
  let changes = 0
  for (;;) {
    if (await linkInPlace(path, text, me)) return { path, holder: me, release: () => releaseIfOurs(path, text) }
    const seen = await readOrNull(path)
    if (seen === null) {
      if (++changes >= ROUNDS) throw new LockBusyError(path, 'racing', null)
      continue
    }
    const holder = format.decode(seen)
    const stale = holder === null ? (await ageMs(path)) > (options.unreadableStaleMs ?? Infinity) : !(await isAlive(holder, me))
    if (stale) {
      if (++changes >= ROUNDS) throw new LockBusyError(path, 'racing', null)
      if (!(await breakStale(path, seen))) await sleep(RETRY_MS)
      continue
    }
    if (Date.now() >= deadline) throw new LockBusyError(path, holder === null ? 'unreadable' : 'held', holder)
    await sleep(RETRY_MS)
  }
}

/** Runs `fn` holding the lock at `path`, and releases it after (also when `fn` throws). */
export async function withLockFile<T>(path: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLockFile(path, options)
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

async function selfHolder(purpose: string): Promise<LockHolder> {
  return { pid: process.pid, start: await startTimeOf(process.pid), boot: await bootId(), host: hostname(), purpose, since: new Date().toISOString(), nonce: randomBytes(8).toString('hex') }
}

/** Writes the content to a private file and links it to the lock's name: true if we took it. */
async function linkInPlace(path: string, text: string, me: LockHolder): Promise<boolean> {
  const temp = `${path}.new-${me.pid}-${me.nonce}`
  const fh = await open(temp, 'wx', 0o644)
  try {
    await fh.writeFile(text)
  } finally {
    await fh.close()
  }
  try {
    await link(temp, path)
    return true
  } catch (err) {
    if (hasCode(err, 'EEXIST')) return false
    throw err
  } finally {
    await unlink(temp)
  }
}

/**
 * Removes the lock at `path` if it still says `seen`, holding the break file while it looks:
 * true if this taker looked (the lock is gone or changed), false if another taker is breaking it.
 */
async function breakStale(path: string, seen: string): Promise<boolean> {
  const brk = `${path}.break`
  let fh
  try {
    fh = await open(brk, 'wx', 0o644)
  } catch (err) {
    if (!hasCode(err, 'EEXIST')) throw err
    if ((await ageMs(brk)) > STALE_BREAK_MS) await unlinkQuiet(brk)
    return false
  }
  try {
    if ((await readOrNull(path)) === seen) await unlinkQuiet(path)
  } finally {
    await fh.close()
    await unlinkQuiet(brk)
  }
  return true
}

async function releaseIfOurs(path: string, text: string): Promise<void> {
  if ((await readOrNull(path).catch(() => null)) === text) await unlinkQuiet(path)
}

/** Whether the holder may still run: the same host, boot and start time (or, lacking those, a live pid). */
async function isAlive(holder: LockHolder, me: LockHolder): Promise<boolean> {
  if (holder.host !== me.host) return true
  if (holder.boot !== '' && me.boot !== '' && holder.boot !== me.boot) return false
  if (holder.start !== '' && me.start !== '') {
    const start = await startTimeOf(holder.pid)
    return start !== '' && start === holder.start
  }
  try {
    process.kill(holder.pid, 0)
    return true
  } catch (err) {
    return !hasCode(err, 'ESRCH')
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or '' where /proc is absent. */
async function startTimeOf(pid: number): Promise<string> {
  const stat = await readOrNull(`/proc/${pid}/stat`).catch(() => null)
  if (stat === null) return ''
  // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return fields[19] ?? ''
}

async function bootId(): Promise<string> {
  return ((await readOrNull('/proc/sys/kernel/random/boot_id').catch(() => null)) ?? '').trim()
}

async function ageMs(path: string): Promise<number> {
  const st = await stat(path).catch(() => null)
  return st === null ? 0 : Date.now() - st.mtimeMs
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return null
    throw err
  }
}

async function unlinkQuiet(path: string): Promise<void> {
  await unlink(path).catch(() => undefined)
}

function hasCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === code
}
