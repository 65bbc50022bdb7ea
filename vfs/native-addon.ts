/*
 * Finding and loading one of our native addons (node-gyp builds them into build/Release/ at
 * install; binding.gyp). Found from the sources (vfs/ or vfs/<part>/) and from the build
 * (dist/vfs/…): the nearest build/Release/<file> up the tree from the calling module. Every addon is optional: a missing or broken one,
 * or TSNFS_NO_NATIVE=1, yields why instead, and the caller uses its JavaScript path.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface LoadedAddon<T> {
  addon: T | null
  why: string | null
  path: string | null
}

/** Load build/Release/<file> as seen from the module at metaUrl; `is` checks it is the addon meant. */
export function loadAddon<T>(file: string, metaUrl: string, is: (addon: Record<string, unknown>) => boolean, what: string): LoadedAddon<T> {
  // An escape hatch, and how benchmarks measure the fallback.
  if (process.env.TSNFS_NO_NATIVE === '1') return { addon: null, why: 'disabled by TSNFS_NO_NATIVE=1', path: null }
  const rel = join('build', 'Release', file)
  const here = dirname(fileURLToPath(metaUrl))
  const path = [1, 2, 3].map((up) => join(here, ...Array<string>(up).fill('..'), rel)).find((p) => existsSync(p))
  if (path === undefined) return { addon: null, why: `${rel} not found (was node-gyp able to build it at install?)`, path: null }
  try {
    const addon = createRequire(metaUrl)(path) as Record<string, unknown>
    if (!is(addon)) return { addon: null, why: `${path}: not the ${what}`, path }
    return { addon: addon as T, why: null, path }
  } catch (err) {
    return { addon: null, why: `${path}: ${err instanceof Error ? err.message : String(err)}`, path }
  }
}
