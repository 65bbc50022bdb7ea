/*
 * FSSTAT and PATHCONF (RFC 1813 §3.3.18, §3.3.20) from statfs(2) of the
 * pinned object itself, not of the export root: with crossmnt the object
 * may live on a file system mounted below the root, and `df` there must
 * show that file system.
 */
import type { FsStat, PathConf } from '../types.ts'
import type { Pinned } from './resolver.ts'
import { fdPath, statfs, toVfsError } from './sys.ts'

/** statfs f_type values with a known link limit. */
const LINK_MAX: ReadonlyMap<number, number> = new Map([
  [0xef53, 65000], // ext2/3/4
  [0x9123683e, 65535], // btrfs
  [0x58465342, 2147483647], // xfs
  [0x01021994, 2147483647], // tmpfs
])

async function statfsOf(p: Pinned): Promise<Awaited<ReturnType<typeof statfs>>> {
  try {
    return await statfs(fdPath(p.fd))
  } catch (err) {
    throw toVfsError(err)
  }
}

export async function fsStatOf(p: Pinned): Promise<FsStat> {
  const s = await statfsOf(p)
  return {
    totalBytes: s.blocks * s.bsize,
    freeBytes: s.bfree * s.bsize,
    availBytes: s.bavail * s.bsize,
    totalFiles: s.files,
    freeFiles: s.ffree,
    availFiles: s.ffree,
  }
}

export async function pathConfOf(p: Pinned): Promise<PathConf> {
  const s = await statfsOf(p)
  return {
    linkMax: LINK_MAX.get(Number(s.type)) ?? 32000,
    nameMax: 255,
    noTrunc: true,
    chownRestricted: true,
    caseInsensitive: false,
    casePreserving: true,
  }
}
