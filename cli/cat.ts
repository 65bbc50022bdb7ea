/*
 * tsnfs cat URL...: each file's bytes to stdout, streamed (READs pipelined
 * by the client's read-ahead), in order. A reader that goes away (EPIPE,
 * `| head`) ends the command quietly.
 */
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { NfsError } from '../client/index.ts'
import type { NfsClient } from '../client/index.ts'
import { eachArg, errnoOf, parseCommand, runCommand, UsageError } from './common.ts'

export const CAT_USAGE = `usage: tsnfs cat URL...
  write the files' contents to stdout
`

/** Stream one file to out without ending out. */
export async function catPath(client: NfsClient, path: string, out: Writable): Promise<void> {
  // A directory would fail at the first READ with NFS3ERR_ISDIR; say so before opening.
  if ((await client.stat(path)).isDirectory()) throw NfsError.client('EISDIR', 'cat', path)
  await pipeline(client.createReadStream(path), out, { end: false })
}

export function cat(argv: string[]): Promise<number> {
  return runCommand('cat', CAT_USAGE, argv, async mounts => {
    const { positionals } = parseCommand(argv, {})
    if (positionals.length === 0) throw new UsageError('missing URL')
    let closed = false
    process.stdout.on('error', () => {
      closed = true
    })
    return eachArg('cat', positionals, async arg => {
      if (closed) return
      const t = await mounts.targetOf(arg)
      try {
        await catPath(t.client, t.path, process.stdout)
      } catch (err) {
        if (errnoOf(err) === 'EPIPE') {
          closed = true
          return
        }
        throw err
      }
    })
  })
}
