/*
 * A pool's lock file: the CLI (label) and a manager (allocate, mark full) change pool.json from
 * different processes; each change is read-modify-write under this lock (common/lock-file.ts,
 * which takes over a lock left by a dead process). A second taker waits, since changes are short.
 */
import { acquireLockFile, LockBusyError } from '../../common/lock-file.ts'
import { DmaError } from '../errors.ts'

/** An unparsable lock (an older version's pid-only file, or an empty one) older than this is stale. */
const UNREADABLE_STALE_MS = 10_000

/** Runs `fn` holding the lock at `path`; waits up to `waitMs` for another holder. */
export async function withLock<T>(path: string, fn: () => Promise<T>, waitMs = 10_000): Promise<T> {
  let lock
  try {
    lock = await acquireLockFile(path, { purpose: 'pool or catalog change', waitMs, unreadableStaleMs: UNREADABLE_STALE_MS })
  } catch (err) {
    if (err instanceof LockBusyError) throw new DmaError('DMA_BUSY', `${path} is held by process ${err.holder?.pid ?? '(unknown)'}`)
    throw err
  }
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}
