/* tsnfs rm [-r] [-f] URL...: REMOVE, or a whole tree with -r (RMDIR after its contents). */
import { eachArg, parseCommand, runCommand, UsageError } from './common.ts'

export const RM_USAGE = `usage: tsnfs rm [-r] [-f] URL...
  -r  remove directories and their contents
  -f  no error for paths that do not exist
`

export function rm(argv: string[]): Promise<number> {
  return runCommand('rm', RM_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, {
      recursive: { type: 'boolean', short: 'r' },
      R: { type: 'boolean', short: 'R' },
      force: { type: 'boolean', short: 'f' },
    })
    if (positionals.length === 0 && values.force !== true) throw new UsageError('missing URL')
    const recursive = values.recursive === true || values.R === true
    return eachArg('rm', positionals, async arg => {
      const t = await mounts.targetOf(arg)
      await t.client.rm(t.path, { recursive, force: values.force === true })
    })
  })
}
