/*
 * An exclusive lock on one tape file across processes: two `tsnfs backup` processes, a backup
 * and a verify, a pool recycling a tape, or two servers given the same pool must never interleave
 * on one cartridge. The lock is TAPE.lock beside the tape (common/lock-file.ts: created whole by
 * link(2), which is atomic on a local file system and one RPC over NFSv3), holding the holder's
 * pid, host, purpose and time as JSON; a holder that died leaves a stale lock, which the next
 * taker breaks. A lock file that does not parse (left empty by an older version that died between
 * create and write) is respected until it is STALE_EMPTY_MS old.
 * The second taker fails at once with TAPE_BUSY naming the holder, rather than waiting: an NDMP
 * TAPE_OPEN answers DEVICE_BUSY_ERR (the protocol's answer; the DMA decides to retry), and a job
 * fails with the holder in its log instead of waiting unseen behind a backup that may run for hours.
 */
import { acquireLockFile, LockBusyError } from '../common/lock-file.ts'

export const LOCK_SUFFIX = '.lock'
/** A lock file that does not parse and is older than this was left by a crash. */
const STALE_EMPTY_MS = 10_000

export class TapeLockError extends Error {
  readonly code = 'TAPE_BUSY'
  readonly holderPid: number | null
  constructor(message: string, holderPid: number | null) {
    super(message)
    this.name = 'TapeLockError'
    this.holderPid = holderPid
  }
}

export interface TapeLock {
  readonly tape: string
  readonly file: string
  /** Removes the lock if it is still ours; never throws. */
  release(): Promise<void>
}

/** Takes the tape's lock for `purpose` (said to a second taker), or throws TapeLockError. */
export async function lockTape(tape: string, purpose: string): Promise<TapeLock> {
  const file = `${tape}${LOCK_SUFFIX}`
  try {
    const lock = await acquireLockFile(file, { purpose, unreadableStaleMs: STALE_EMPTY_MS })
    return { tape, file, release: () => lock.release() }
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err
    const h = err.holder
    if (h !== null) throw new TapeLockError(`tape ${tape} is in use by process ${h.pid} on ${h.host} (${h.purpose}) since ${h.since}; lock file ${file}`, h.pid)
    if (err.reason === 'unreadable') throw new TapeLockError(`tape ${tape} is being locked by another process (${file})`, null)
    throw new TapeLockError(`tape ${tape}: its lock ${file} changed hands while taking it`, null)
  }
}
