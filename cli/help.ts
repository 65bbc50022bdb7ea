/*
 * What every command shares about help and version, kept apart from
 * common.ts so that serve, exports and stats load no client code for it.
 */
import { readFileSync } from 'node:fs'

/** `--help` (and `-h`, unless the command gives -h another meaning) before any `--`. */
export function wantsHelp(argv: readonly string[], shortH = true): boolean {
  const end = argv.indexOf('--')
  const opts = end === -1 ? argv : argv.slice(0, end)
  return opts.includes('--help') || (shortH && opts.includes('-h'))
}

/** The package's version: the nearest package.json above this module (cli/ in the sources, dist/cli/ when built). */
export function packageVersion(): string {
  let dir = new URL('.', import.meta.url)
  for (let level = 0; level < 3; level++) {
    dir = new URL('..', dir)
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'tsnfs' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // not there: try the next level up
    }
  }
  return 'unknown'
}
