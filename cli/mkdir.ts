/* tsnfs mkdir [-p] [-m MODE] URL...: MKDIR, or every missing component with -p. */
import { eachArg, parseCommand, runCommand, umask, UsageError } from './common.ts'

export const MKDIR_USAGE = `usage: tsnfs mkdir [-p] [-m MODE] URL...
  -p       create missing parents; no error if the directory exists
  -m MODE  octal permission bits (default 0777 less the umask)
`

/** The mode for new directories: -m, else 0777 less the process umask (as mkdir(1)). */
export function modeArg(text: string | undefined): number {
  if (text === undefined) return 0o777 & ~umask()
  if (!/^[0-7]{1,4}$/.test(text)) throw new UsageError(`invalid mode '${text}'`)
  return parseInt(text, 8)
}

export function mkdir(argv: string[]): Promise<number> {
  return runCommand('mkdir', MKDIR_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, { parents: { type: 'boolean', short: 'p' }, mode: { type: 'string', short: 'm' } })
    if (positionals.length === 0) throw new UsageError('missing URL')
    const mode = modeArg(values.mode)
    return eachArg('mkdir', positionals, async arg => {
      const t = await mounts.targetOf(arg)
      await t.client.mkdir(t.path, { mode, recursive: values.parents === true })
    })
  })
}
