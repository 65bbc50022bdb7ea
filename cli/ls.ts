/*
 * tsnfs ls [-l] [-a] [-R] URL...: one name per line, or ls -l's long format
 * from READDIRPLUS attributes (the client falls back to READDIR + LOOKUP on
 * servers without it). Names are sorted bytewise (LC_ALL=C), dot files
 * only with -a, which also lists '.' and '..'.
 */
import type { DirEntryPlus, NfsClient, NfsStats } from '../client/index.ts'
import { eachArg, joinPath, parseCommand, runCommand, UsageError } from './common.ts'
import { longLines } from './format.ts'
import type { LongEntry } from './format.ts'

export const LS_USAGE = `usage: tsnfs ls [-l] [-a] [-R] URL...
  -l  long format: mode, links, uid, gid, size, mtime, name (-> target for symlinks)
  -a  include names starting with '.', and '.' and '..'
  -R  list subdirectories recursively
`

export interface LsOptions {
  long: boolean
  all: boolean
  recursive: boolean
}

type Write = (text: string) => void

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

async function withStats(client: NfsClient, dir: string, e: DirEntryPlus): Promise<LongEntry> {
  const path = joinPath(dir, e.name)
  const stats: NfsStats = e.stats ?? (await client.lstat(path))
  return { name: e.name, stats, target: stats.isSymbolicLink() ? await client.readlink(path) : undefined }
}

async function listDir(client: NfsClient, path: string, label: string, opts: LsOptions, out: Write, header: boolean): Promise<void> {
  const all = (await client.readdirPlus(path)).filter(e => opts.all || !e.name.startsWith('.')).sort(byName)
  if (header) out(`${label}:\n`)
  const entries: LongEntry[] = []
  if (opts.long || opts.recursive) {
    for (const e of all) entries.push(await withStats(client, path, e))
  }
  if (opts.long) {
    const dots: LongEntry[] = opts.all
      ? [
          { name: '.', stats: await client.stat(path) },
          { name: '..', stats: await client.stat(joinPath(path, '..')) },
        ]
      : []
    for (const line of longLines([...dots, ...entries])) out(`${line}\n`)
  } else {
    if (opts.all) out('.\n..\n')
    for (const e of all) out(`${e.name}\n`)
  }
  if (!opts.recursive) return
  for (const e of entries) {
    if (!e.stats.isDirectory()) continue
    out('\n')
    await listDir(client, joinPath(path, e.name), joinPath(label, e.name), opts, out, true)
  }
}

/**
 * List one path: a directory's entries, or the path itself for anything
 * else. A symlink named on the command line is followed unless -l (as ls).
 */
export async function listPath(client: NfsClient, path: string, label: string, opts: LsOptions, out: Write, header: boolean): Promise<void> {
  const st = opts.long ? await client.lstat(path) : await client.stat(path)
  if (st.isDirectory()) {
    await listDir(client, path, label, opts, out, header || opts.recursive)
    return
  }
  if (!opts.long) {
    out(`${label}\n`)
    return
  }
  const target = st.isSymbolicLink() ? await client.readlink(path) : undefined
  for (const line of longLines([{ name: label, stats: st, target }])) out(`${line}\n`)
}

export function ls(argv: string[]): Promise<number> {
  return runCommand('ls', LS_USAGE, argv, async mounts => {
    const { values, positionals } = parseCommand(argv, {
      long: { type: 'boolean', short: 'l' },
      all: { type: 'boolean', short: 'a' },
      recursive: { type: 'boolean', short: 'R' },
    })
    if (positionals.length === 0) throw new UsageError('missing URL')
    const opts: LsOptions = { long: values.long === true, all: values.all === true, recursive: values.recursive === true }
    const out: Write = text => process.stdout.write(text)
    let first = true
    return eachArg('ls', positionals, async arg => {
      const t = await mounts.targetOf(arg)
      if (!first) out('\n')
      first = false
      const label = t.client.exportPath === '/' ? t.path : t.path === '/' ? t.client.exportPath : `${t.client.exportPath}${t.path}`
      await listPath(t.client, t.path, label, opts, out, positionals.length > 1)
    })
  })
}
