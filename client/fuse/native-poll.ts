/*
 * The loader of the main-thread /dev/fuse reader (native/poll.c, built by
 * node-gyp into build/Release/ at install, beside the local backend's times
 * helper). Found from the sources (client/fuse/) and from the build
 * (dist/client/fuse/). When it is missing or fails to load, or
 * TSNFS_NO_NATIVE=1 or TSNFS_FUSE_READER=worker is set, `fusePoll()` is
 * null and the session reads through a worker thread (reader-worker.ts).
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface FusePoll {
  /** Make fd non-blocking and call onReadable (status < 0: a poll error) on the main thread whenever it may be read. */
  watch(fd: number, onReadable: (status: number) => void): object
  /** Stop watching (idempotent). */
  unwatch(handle: object): void
  /** One read(2) into buffer: the bytes read, or -errno (never throws). */
  readInto(fd: number, buffer: Buffer): number
}

const ADDON = join('build', 'Release', 'tsnfs_fuse.node')

let loaded: { addon: FusePoll | null; why: string | null } | null = null

function load(): { addon: FusePoll | null; why: string | null } {
  if (process.env.TSNFS_NO_NATIVE === '1') return { addon: null, why: 'disabled by TSNFS_NO_NATIVE=1' }
  if (process.env.TSNFS_FUSE_READER === 'worker') return { addon: null, why: 'TSNFS_FUSE_READER=worker' }
  const here = dirname(fileURLToPath(import.meta.url))
  // client/fuse/ (sources) is two levels below the package root, dist/client/fuse/ three.
  const path = [join(here, '..', '..', ADDON), join(here, '..', '..', '..', ADDON)].find(p => existsSync(p))
  if (path === undefined) return { addon: null, why: `${ADDON} not found` }
  try {
    const addon = createRequire(import.meta.url)(path) as Partial<FusePoll>
    if (typeof addon.watch !== 'function' || typeof addon.unwatch !== 'function' || typeof addon.readInto !== 'function') {
      return { addon: null, why: `${path}: not the FUSE reader` }
    }
    return { addon: addon as FusePoll, why: null }
  } catch (err) {
    return { addon: null, why: `${path}: ${err instanceof Error ? err.message : String(err)}` }
  }
}

/** The addon, loaded on first use; null when it cannot be had (whyNoFusePoll says why). */
export function fusePoll(): FusePoll | null {
  loaded ??= load()
  return loaded.addon
}

export function whyNoFusePoll(): string | null {
  loaded ??= load()
  return loaded.why
}
