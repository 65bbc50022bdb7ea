/*
 * tsnfs df [-h] URL...: FSSTAT (RFC 1813 §3.3.18): total, used (total less
 * free), available to the caller, and file slots, as df(1) prints them.
 */
import type { NfsClient } from '../client/index.ts'
import { eachArg, parseCommand, runCommand, UsageError } from './common.ts'
import { humanSize } from './format.ts'

export const DF_USAGE = `usage: tsnfs df [-h] URL...
  size, used and available space, and files (total, free) of the export
  -h  sizes in powers of 1024 (K, M, G)
`

export async function dfLines(client: NfsClient, human: boolean): Promise<string[]> {
  const s = await client.statfs()
  const used = s.tbytes - s.fbytes
  // df's Use%: used / (used + avail), rounded up.
  const base = used + s.abytes
  const pct = base === 0n ? '-' : `${String((used * 100n + base - 1n) / base)}%`
  const size = (n: bigint): string => (human ? humanSize(n) : String((n + 1023n) / 1024n))
  const name = `${client.host}:${client.exportPath}`
  const rows = [
    ['Filesystem', human ? 'Size' : '1K-blocks', 'Used', human ? 'Avail' : 'Available', 'Use%', 'Files', 'FFree'],
    [name, size(s.tbytes), size(used), size(s.abytes), pct, String(s.tfiles), String(s.ffiles)],
  ]
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' '))
}

export function df(argv: string[]): Promise<number> {
  return runCommand('df', DF_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, { human: { type: 'boolean', short: 'h' } })
    if (positionals.length === 0) throw new UsageError('missing URL')
    return eachArg('df', positionals, async arg => {
      const t = await mounts.targetOf(arg)
      process.stdout.write(`${(await dfLines(t.client, values.human === true)).join('\n')}\n`)
    })
  })
}
