/*
 * tsnfs cp [-r] [-p] SRC... DST: each side a nfs:// URL or a local path;
 * local→server, server→local and server→server (also between two servers).
 */
import { isNfsUrl, parseCommand, runCommand, UsageError } from './common.ts'
import type { Mounts } from './common.ts'
import { copy } from './copy.ts'
import type { Place } from './copy.ts'
import { localSide, nfsSide } from './sides.ts'

export const CP_USAGE = `usage: tsnfs cp [-r] [-p] SRC... DST
  SRC and DST are nfs:// URLs or local paths, in any combination
  -r  copy directories recursively (symlinks are copied as symlinks)
  -p  preserve mode, access and modification times
  a progress bar is drawn on stderr when it is a terminal
`

/** A local path or a URL (mounted through `mounts`) as a copy end. */
export async function placeOf(mounts: Mounts, arg: string): Promise<Place> {
  if (!isNfsUrl(arg)) return { side: localSide, path: arg }
  const t = await mounts.targetOf(arg)
  return { side: nfsSide(t.client, arg), path: t.path }
}

export function cp(argv: string[]): Promise<number> {
  return runCommand('cp', CP_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, {
      recursive: { type: 'boolean', short: 'r' },
      R: { type: 'boolean', short: 'R' },
      preserve: { type: 'boolean', short: 'p' },
    })
    if (positionals.length < 2) throw new UsageError('missing operand')
    const args = positionals.slice(0, -1)
    const last = positionals[positionals.length - 1] ?? ''
    const places: Place[] = []
    // Mount each side once, reusing mounts for URLs of the same export (see Mounts).
    for (const a of args) places.push(await placeOf(mounts, a))
    const dst = await placeOf(mounts, last)
    await copy(places, dst, {
      recursive: values.recursive === true || values.R === true,
      preserve: values.preserve === true,
      progress: process.stderr,
    })
    return 0
  })
}
