/*
 * tsnfs ln [-s] TARGET URL: LINK (TARGET is a URL on the same export,
 * RFC 1813 §3.3.15) or, with -s, SYMLINK whose text is TARGET as given.
 */
import { at, parseCommand, PathError, runCommand, strerror, UsageError } from './common.ts'

export const LN_USAGE = `usage: tsnfs ln TARGET-URL LINK-URL      hard link (same export)
       tsnfs ln -s TEXT LINK-URL           symbolic link whose content is TEXT
`

export function ln(argv: string[]): Promise<number> {
  return runCommand('ln', LN_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, { symbolic: { type: 'boolean', short: 's' } })
    const [target, link, ...extra] = positionals
    if (target === undefined || link === undefined || extra.length > 0) throw new UsageError('need exactly TARGET and LINK-URL')
    const dst = await mounts.targetOf(link)
    if (values.symbolic === true) {
      await at(link, () => dst.client.symlink(target, dst.path))
      return 0
    }
    const src = await mounts.targetOf(target)
    if (src.client !== dst.client) throw new PathError(link, `${strerror('EXDEV')} (not on the mount of ${target})`)
    await at(link, () => dst.client.link(src.path, dst.path))
    return 0
  })
}
