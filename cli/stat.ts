/*
 * tsnfs stat [-L] URL...: every attribute of fattr3 (RFC 1813 §2.6): type,
 * mode, nlink, uid, gid, size, used, rdev, fsid, fileid, and the three
 * times with the nanoseconds the server sent.
 */
import type { NfsClient } from '../client/index.ts'
import { eachArg, parseCommand, runCommand, UsageError } from './common.ts'
import { statText } from './format.ts'

export const STAT_USAGE = `usage: tsnfs stat [-L] URL...
  all attributes: size, used, type, mode, uid, gid, nlink, fileid, fsid, rdev, times (ns)
  -L  follow a symbolic link (default: describe the link itself)
`

export async function statPath(client: NfsClient, path: string, label: string, follow: boolean): Promise<string> {
  const st = follow ? await client.stat(path) : await client.lstat(path)
  return statText(label, st, st.isSymbolicLink() ? await client.readlink(path) : undefined)
}

export function stat(argv: string[]): Promise<number> {
  return runCommand('stat', STAT_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, { dereference: { type: 'boolean', short: 'L' } })
    if (positionals.length === 0) throw new UsageError('missing URL')
    return eachArg('stat', positionals, async arg => {
      const t = await mounts.targetOf(arg)
      const label = t.client.exportPath === '/' ? t.path : `${t.client.exportPath}${t.path === '/' ? '' : t.path}`
      process.stdout.write(await statPath(t.client, t.path, label, values.dereference === true))
    })
  })
}
