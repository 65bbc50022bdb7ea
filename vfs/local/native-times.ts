/*
 * The loader of the native times helper (vfs/local/native/times.c, built by
 * node-gyp into build/Release/ when the package is installed). Found from
 * the sources (vfs/local/) and from the build (dist/vfs/local/) alike. When
 * it is missing or fails to load (or TSNFS_NO_NATIVE=1), `nativeTimes()` is
 * null and `whyNoNativeTimes()` says why; times.ts then falls back to touch(1).
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface NativeTimes {
  /** utimensat on /proc/self/fd/<fd>, never following a symlink; returns the errno (0: done). */
  setTimes(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number
  /** The nanosecond values that mean "now" and "leave unchanged". */
  readonly UTIME_NOW: number
  readonly UTIME_OMIT: number
}

const ADDON = join('build', 'Release', 'tsnfs_times.node')

interface Loaded {
  addon: NativeTimes | null
  why: string | null
  path: string | null
}

let loaded: Loaded | null = null

function load(): Loaded {
  // An escape hatch, and how the benchmark measures the fallback.
  if (process.env.TSNFS_NO_NATIVE === '1') return { addon: null, why: 'disabled by TSNFS_NO_NATIVE=1', path: null }
  const here = dirname(fileURLToPath(import.meta.url))
  // vfs/local/ (sources) is two levels below the package root, dist/vfs/local/ three.
  const candidates = [join(here, '..', '..', ADDON), join(here, '..', '..', '..', ADDON)]
  const path = candidates.find(p => existsSync(p))
  if (path === undefined) return { addon: null, why: `${ADDON} not found (was node-gyp able to build it at install?)`, path: null }
  try {
    const addon = createRequire(import.meta.url)(path) as Partial<NativeTimes>
    if (typeof addon.setTimes !== 'function' || typeof addon.UTIME_NOW !== 'number' || typeof addon.UTIME_OMIT !== 'number') {
      return { addon: null, why: `${path}: not the times helper`, path }
    }
    return { addon: addon as NativeTimes, why: null, path }
  } catch (err) {
    return { addon: null, why: `${path}: ${err instanceof Error ? err.message : String(err)}`, path }
  }
}

/** The addon, loaded on first use; null when it cannot be had. */
export function nativeTimes(): NativeTimes | null {
  loaded ??= load()
  return loaded.addon
}

/** Where the addon was found (null: nowhere). */
export function nativeTimesPath(): string | null {
  loaded ??= load()
  return loaded.path
}

/** Why nativeTimes() is null (null when it is not). */
export function whyNoNativeTimes(): string | null {
  loaded ??= load()
  return loaded.why
}

let reported = false

/** Once per process, when the helper is missing: tell `warn` why timestamps will cost a process each. */
export function reportNoNativeTimes(warn: ((msg: string) => void) | undefined): void {
  const why = whyNoNativeTimes()
  if (why === null || reported || warn === undefined) return
  reported = true
  warn(`native times helper unavailable (${why}): times with nanoseconds will be set by running touch(1), one process each`)
}
