/*
 * The loader of the native times helper (vfs/local/native/times.c, built by
 * node-gyp into build/Release/ when the package is installed). Found from
 * the sources (vfs/local/) and from the build (dist/vfs/local/) alike. When
 * it is missing or fails to load (or TSNFS_NO_NATIVE=1), `nativeTimes()` is
 * null and `whyNoNativeTimes()` says why; times.ts then falls back to touch(1).
 */
import { loadAddon } from '../native-addon.ts'
import type { LoadedAddon } from '../native-addon.ts'

export interface NativeTimes {
  /** utimensat on /proc/self/fd/<fd>, never following a symlink; returns the errno (0: done). */
  setTimes(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number
  /** The nanosecond values that mean "now" and "leave unchanged". */
  readonly UTIME_NOW: number
  readonly UTIME_OMIT: number
}

let loaded: LoadedAddon<NativeTimes> | null = null

function load(): LoadedAddon<NativeTimes> {
  return loadAddon<NativeTimes>('tsnfs_times.node', import.meta.url,
    (a) => typeof a.setTimes === 'function' && typeof a.UTIME_NOW === 'number' && typeof a.UTIME_OMIT === 'number', 'times helper')
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
