/*
 * A primary's time as every standby's backend keeps it. A local export
 * reports a file from before 1970 with negative seconds (vfs/local/attr.ts),
 * and the times after each change travel with it. The backends store such
 * times (vfs/set-attr-checks.ts), but the engine only within ext4's range
 * (1901-12-13 to 2446-05-10) and clamps the rest, as the kernel does. The
 * standby sets every time clamped to that range, so that whatever its
 * backend, the resync's comparison (server/replication/resync-target.ts)
 * finds what it set and does not send such a file again each time.
 */
import type { Timespec } from '../types.ts'

/** The seconds a large ext4 inode holds (vfs/engine/format/inode.ts: EXT4_TIME_MIN_SEC, _MAX_SEC). */
const MIN_SEC = -(2 ** 31)
const MAX_SEC = 3 * 2 ** 32 + 2 ** 31 - 1

export function storableTime(t: Timespec): Timespec {
  if (t.sec >= MIN_SEC && t.sec <= MAX_SEC) return t
  return { sec: Math.max(MIN_SEC, Math.min(MAX_SEC, t.sec)), nsec: t.nsec }
}

/** The SETATTR that sets a primary's atime and mtime on a standby. */
export function storableTimes(atime: Timespec, mtime: Timespec): { atime: Timespec; mtime: Timespec } {
  return { atime: storableTime(atime), mtime: storableTime(mtime) }
}
