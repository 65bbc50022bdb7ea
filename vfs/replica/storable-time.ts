/*
 * A primary's time as a standby's backend can set it. A local export reports
 * a file from before 1970 with negative seconds (vfs/local/attr.ts), and the
 * times after each change travel with it; every backend's SETATTR refuses
 * negative seconds (vfs/set-attr-checks.ts), so the standby's flush failed
 * with EINVAL on every try and its export stopped advancing (the replication
 * fuzzer found it, session 43). NFS shows clients no such time either
 * (nfstime3 seconds are unsigned: server/nfs3/attrs.ts answers 0), so the
 * standby keeps what the primary's clients saw: the epoch.
 */
import type { Timespec } from '../types.ts'

const EPOCH: Timespec = { sec: 0, nsec: 0 }

export function storableTime(t: Timespec): Timespec {
  return t.sec < 0 ? EPOCH : t
}

/** The SETATTR that sets a primary's atime and mtime on a standby. */
export function storableTimes(atime: Timespec, mtime: Timespec): { atime: Timespec; mtime: Timespec } {
  return { atime: storableTime(atime), mtime: storableTime(mtime) }
}
