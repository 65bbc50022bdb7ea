/*
 * Open file descriptors for READ/WRITE/COMMIT, cached (unfs3's design): a
 * bounded LRU closed after a short idle time, keyed by id and checked
 * against the generation. An fd is opened by reopening the pinned O_PATH fd
 * through `/proc/self/fd/<n>`, which opens exactly the pinned inode (no name
 * is looked up again, so nothing swapped in meanwhile can be opened).
 * O_NOATIME keeps reads from turning into metadata writes (and from
 * disturbing an exclusive-create verifier kept in atime).
 */
import fs from 'node:fs'
import type { FdCache, FdEntry } from './fd-cache.ts'
import type { Pinned } from './resolver.ts'
import { codeOf, fdPath, openNow, toVfsError } from './sys.ts'

const c = fs.constants
const RW = 1
const RO = 0

export class IoFiles {
  readonly #cache: FdCache

  constructor(cache: FdCache) {
    this.#cache = cache
  }

  get openCount(): number {
    return this.#cache.openCount
  }

  /** An fd for the pinned regular file, readable, and writable when `write`. Release it with release(). */
  acquire(p: Pinned, write: boolean): FdEntry {
    const hit = this.#cache.acquire(p.id)
    if (hit !== undefined) {
      if (hit.gen === p.gen && (hit.tag === RW || !write)) return hit
      this.#cache.release(hit)
      void this.#cache.evict(p.id)
    }
    let fd: number
    let tag = RW
    try {
      fd = reopen(p.fd, c.O_RDWR)
    } catch (err) {
      // A file we may read but not write (mode, immutable, read-only mount): reads still work.
      if (write || !['EACCES', 'EPERM', 'EROFS', 'ETXTBSY'].includes(codeOf(err) ?? '')) throw toVfsError(err)
      try {
        fd = reopen(p.fd, c.O_RDONLY)
      } catch (e2) {
        throw toVfsError(e2)
      }
      tag = RO
    }
    return this.#cache.insert(p.id, fd, p.gen, tag)
  }

  release(e: FdEntry): void {
    this.#cache.release(e)
  }

  /** Adopts an fd we opened read-write ourselves (a new file from CREATE). */
  adopt(id: bigint, fd: number, gen: number): void {
    this.#cache.release(this.#cache.insert(id, fd, gen, RW))
  }

  clear(): Promise<void> {
    return this.#cache.clear()
  }

  /** Closes the fd of a file after an fsync error (so no later fsync on it can look clean) or on removal. */
  drop(id: bigint, small = false): Promise<void> {
    return this.#cache.evict(id, small)
  }
}

/** Synchronous (sys.ts): opening an inode already pinned looks nothing up on the disk and never blocks (O_NONBLOCK). */
function reopen(pathFd: number, access: number): number {
  // No O_NOFOLLOW: the last component is the magic link itself, which must be followed (to the pinned inode).
  const flags = access | c.O_NONBLOCK
  try {
    return openNow(fdPath(pathFd), flags | c.O_NOATIME)
  } catch (err) {
    // O_NOATIME is refused for files we do not own unless we have CAP_FOWNER.
    if (codeOf(err) !== 'EPERM') throw err
    return openNow(fdPath(pathFd), flags)
  }
}
