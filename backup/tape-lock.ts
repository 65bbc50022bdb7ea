/*
 * An exclusive lock on one tape file across processes: two `tsnfs backup` processes, a backup
 * and a verify, or two servers given the same pool must never interleave on one cartridge. The
 * lock is TAPE.lock beside the tape, created with O_EXCL (atomic on a local file system, and on
 * NFSv3 by CREATE EXCLUSIVE, RFC 1813 §3.3.8) and holding the holder's pid, host and purpose;
 * Node has no flock(2) without a native module. A holder that died (this host, its pid gone)
 * leaves a stale lock, which the next taker breaks under a second O_EXCL file (TAPE.lock.break)
 * after reading it again, so two takers never both break it and both hold.
 * The second taker fails at once with TAPE_BUSY naming the holder, rather than waiting: an NDMP
 * TAPE_OPEN answers DEVICE_BUSY_ERR (the protocol's answer; the DMA decides to retry), and a job
 * fails with the holder in its log instead of waiting unseen behind a backup that may run for hours.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'

export const LOCK_SUFFIX = '.lock'
/** A lock file still empty (its creator has not written it yet) or a break file older than this is left by a crash. */
const STALE_EMPTY_MS = 10_000
const ATTEMPTS = 5

export class TapeLockError extends Error {
  readonly code = 'TAPE_BUSY'
  readonly holderPid: number | null
  constructor(message: string, holderPid: number | null) {
    super(message)
    this.name = 'TapeLockError'
    this.holderPid = holderPid
  }
}

interface Holder {
  pid: number
  host: string
  purpose: string
  since: string
}

export interface TapeLock {
  readonly tape: string
  readonly file: string
  /** Removes the lock if it is still ours; never throws. */
  release(): Promise<void>
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return errno(err) === 'EPERM'
  }
}

function parseHolder(text: string): Holder | null {
  try {
    const v = JSON.parse(text) as Partial<Holder>
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.host !== 'string') return null
    return { pid: v.pid, host: v.host, purpose: typeof v.purpose === 'string' ? v.purpose : '', since: typeof v.since === 'string' ? v.since : '' }
  } catch {
    return null
  }
}

async function ageMs(path: string): Promise<number> {
  const st = await stat(path).catch(() => null)
  return st === null ? 0 : Date.now() - st.mtimeMs
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if (errno(err) === 'ENOENT') return null
    throw err
  }
}

/** Removes the lock at `file` if it still says `seen`, holding the break file while it looks. */
async function breakStale(file: string, seen: string): Promise<void> {
  const brk = `${file}.break`
  let fh
  try {
    fh = await open(brk, 'wx', 0o644)
  } catch (err) {
    if (errno(err) !== 'EEXIST') throw err
    // Another taker is breaking it now, or died doing so (its break file stays old).
    if ((await ageMs(brk)) > STALE_EMPTY_MS) await unlink(brk).catch(() => undefined)
    return
  }
  try {
    if ((await readOrNull(file)) === seen) await unlink(file).catch(() => undefined)
  } finally {
    await fh.close()
    await unlink(brk).catch(() => undefined)
  }
}

/** Takes the tape's lock for `purpose` (said to a second taker), or throws TapeLockError. */
export async function lockTape(tape: string, purpose: string): Promise<TapeLock> {
  const file = `${tape}${LOCK_SUFFIX}`
  const mine = `${JSON.stringify({ pid: process.pid, host: hostname(), purpose, since: new Date().toISOString() })}\n`
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o644)
      try {
        await fh.writeFile(mine)
      } finally {
        await fh.close()
      }
      return {
        tape,
        file,
        release: async () => {
          if ((await readOrNull(file).catch(() => null)) === mine) await unlink(file).catch(() => undefined)
        },
      }
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err
    }
    const text = await readOrNull(file)
    if (text === null) continue
    const h = parseHolder(text)
    const stale = h === null ? (await ageMs(file)) > STALE_EMPTY_MS : h.host === hostname() && !alive(h.pid)
    if (stale) {
      await breakStale(file, text)
      continue
    }
    if (h === null) throw new TapeLockError(`tape ${tape} is being locked by another process (${file})`, null)
    throw new TapeLockError(`tape ${tape} is in use by process ${h.pid} on ${h.host} (${h.purpose}) since ${h.since}; lock file ${file}`, h.pid)
  }
  throw new TapeLockError(`tape ${tape}: its lock ${file} changed hands ${ATTEMPTS} times while taking it`, null)
}
