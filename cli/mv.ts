/*
 * tsnfs mv SRC DST: RENAME within one mount (RFC 1813 §3.3.14 renames only
 * inside one file system; URLs of different exports or servers give EXDEV).
 * A DST that is an existing directory receives SRC under its own name.
 */
import type { NfsClient } from '../client/index.ts'
import { at, baseName, errnoOf, joinPath, parseCommand, PathError, runCommand, strerror, UsageError } from './common.ts'

export const MV_USAGE = `usage: tsnfs mv SRC-URL DST-URL
  rename inside one export; into DST-URL/ when it is a directory
`

/** rename, into `to` when it is an existing directory (mv's rule). */
export async function movePath(client: NfsClient, from: string, to: string): Promise<void> {
  let dest = to
  try {
    if ((await client.stat(to)).isDirectory() && baseName(from) !== '') dest = joinPath(to, baseName(from))
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err
  }
  await client.rename(from, dest)
}

export function mv(argv: string[]): Promise<number> {
  return runCommand('mv', MV_USAGE, argv, async mounts => {
    const { positionals } = parseCommand(argv, {})
    const [from, to, ...extra] = positionals
    if (from === undefined || to === undefined || extra.length > 0) throw new UsageError('need exactly SRC-URL and DST-URL')
    const src = await mounts.targetOf(from)
    const dst = await mounts.targetOf(to)
    if (src.client !== dst.client) throw new PathError(to, `${strerror('EXDEV')} (not on the mount of ${from})`)
    await at(from, () => movePath(src.client, src.path, dst.path))
    return 0
  })
}

