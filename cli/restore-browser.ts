/*
 * The restore browser of `tsnfs restore` (issue 16 §6): a shell over the catalog at a point in
 * time. The commands work the same typed at a prompt, read from a script or piped in; a failing
 * command prints `<cmd>: <message>` on stderr and the browser goes on (exit status 1 at the end).
 */
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import type { Catalog } from '../backup/catalog/catalog.ts'
import { chainAt } from '../backup/catalog/chain.ts'
import type { RestoreExecutor } from '../backup/catalog/plan.ts'
import { restorePlan } from '../backup/catalog/plan.ts'
import { backupsContaining, dirAt, findFiles, versionAt } from '../backup/catalog/queries.ts'
import { parseCommand, messageOf, UsageError } from './common.ts'
import { formatNs, parseDate } from './restore-date.ts'
import { lsLine, planText, searchLine, versionLine } from './restore-print.ts'
import { splitWords } from './shell.ts'

export interface BrowserState {
  cat: Catalog
  fs: string
  atNs: bigint
  cwd: string
  /** The restore list: absolute paths, a directory standing for its subtree. */
  selection: Set<string>
  executor: RestoreExecutor | null
  out: Writable
}

export const BROWSER_HELP = `commands:
  ls [PATH]             what the directory held at the date (mode, uid, gid, size, mtime, backup #, level)
  cd PATH | pwd         move in the tree as it was at the date
  search PATTERN        versions whose name matches a glob (*, ?, [...]; with a / the path), up to the date
  versions PATH         every backup holding PATH: level, date, size, sha256, tape and offset
  add PATH... | del PATH...   change the restore list (a directory brings its subtree)
  show                  the restore list and its plan
  date [T]              show or change the date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM], @SECONDS, now)
  restore [--to DIR|EXPORT] [--overwrite]   restore the list as it was at the date
  help | quit
`

/** PATH against the cwd; '..' above the root is refused rather than clamped. */
export function resolvePath(cwd: string, arg: string): string {
  const parts = arg.startsWith('/') ? [] : cwd.split('/').filter(p => p !== '')
  for (const p of arg.split('/')) {
    if (p === '' || p === '.') continue
    if (p === '..') {
      if (parts.length === 0) throw new UsageError(`${arg}: outside the backed-up filesystem`)
      parts.pop()
    } else parts.push(p)
  }
  return `/${parts.join('/')}`
}

function print(st: BrowserState, text: string): void {
  st.out.write(text.endsWith('\n') ? text : `${text}\n`)
}

type Command = (st: BrowserState, args: string[]) => Promise<void> | void

function oneOrNone(args: string[], what: string): string | undefined {
  if (args.length > 1) throw new UsageError(`one ${what} at most`)
  return args[0]
}

export const BROWSER_COMMANDS: Readonly<Record<string, Command>> = {
  ls(st, args) {
    const d = resolvePath(st.cwd, oneOrNone(args, 'path') ?? '.')
    print(st, dirAt(st.cat, st.fs, d, st.atNs).entries.map(lsLine).join('\n'))
  },
  cd(st, args) {
    const d = resolvePath(st.cwd, oneOrNone(args, 'path') ?? '/')
    dirAt(st.cat, st.fs, d, st.atNs)
    st.cwd = d
  },
  pwd(st) {
    print(st, st.cwd)
  },
  search(st, args) {
    const pattern = oneOrNone(args, 'pattern')
    if (pattern === undefined) throw new UsageError('search PATTERN')
    const hits = findFiles(st.cat, st.fs, pattern, { beforeNs: st.atNs })
    print(st, hits.length === 0 ? `no match for ${pattern}` : hits.map(searchLine).join('\n'))
  },
  versions(st, args) {
    const p = oneOrNone(args, 'path')
    if (p === undefined) throw new UsageError('versions PATH')
    const path = resolvePath(st.cwd, p)
    const vs = backupsContaining(st.cat, st.fs, path)
    print(st, vs.length === 0 ? `${path}: in no backup` : vs.map(versionLine).join('\n'))
  },
  add(st, args) {
    if (args.length === 0) throw new UsageError('add PATH...')
    const chain = chainAt(st.cat, st.fs, st.atNs)
    for (const a of args) {
      const p = resolvePath(st.cwd, a)
      if (!versionAt(st.cat, chain, p).present) throw new UsageError(`${p}: not in the backup of ${formatNs(st.atNs)}`)
      st.selection.add(p)
    }
  },
  del(st, args) {
    if (args.length === 0) throw new UsageError('del PATH...')
    for (const a of args) {
      const p = resolvePath(st.cwd, a)
      if (!st.selection.delete(p)) throw new UsageError(`${p}: not in the restore list`)
    }
  },
  show(st) {
    if (st.selection.size === 0) {
      print(st, 'the restore list is empty')
      return
    }
    print(st, [...st.selection].sort().join('\n'))
    print(st, planText(restorePlan(st.cat, st.fs, [...st.selection], st.atNs)))
  },
  date(st, args) {
    const t = oneOrNone(args, 'date')
    if (t !== undefined) st.atNs = parseDate(t)
    const chain = chainAt(st.cat, st.fs, st.atNs)
    const head = chain.backups[chain.backups.length - 1]
    print(st, `date ${formatNs(st.atNs)}: ${head === undefined ? 'no backup at or before it' : `chain ${chain.backups.map(b => `#${b.id} L${b.level}`).join(', ')}`}`)
  },
  async restore(st, args) {
    const { values, positionals } = parseCommand(args, { to: { type: 'string' }, overwrite: { type: 'boolean' } })
    if (positionals.length > 0) throw new UsageError('restore [--to DIR|EXPORT] [--overwrite]')
    if (st.selection.size === 0) throw new UsageError('the restore list is empty (add PATH first)')
    const plan = restorePlan(st.cat, st.fs, [...st.selection], st.atNs)
    if (st.executor === null) throw new UsageError(`no restore executor here (tsnfs backup restores through NDMP); the plan:\n${planText(plan)}`)
    const sum = await st.executor.execute(plan, {
      to: values.to ?? null,
      overwrite: values.overwrite === true,
      onLog: (level, message) => { print(st, `${level}: ${message}`) },
    })
    print(st, `restored ${sum.files} file(s), ${sum.dirs} dir(s), ${sum.bytes} bytes${sum.skipped.length > 0 ? `; kept existing: ${sum.skipped.join(' ')}` : ''}`)
  },
  help(st) {
    print(st, BROWSER_HELP)
  },
}

/** Runs one line; 'exit' on quit. */
export async function executeLine(st: BrowserState, line: string, err: Writable): Promise<'ok' | 'failed' | 'exit'> {
  let words: string[]
  try {
    words = splitWords(line.trim())
  } catch (e) {
    err.write(`${messageOf(e)}\n`)
    return 'failed'
  }
  const [name, ...args] = words
  if (name === undefined || name.startsWith('#')) return 'ok'
  if (name === 'quit' || name === 'exit') return 'exit'
  const command = Object.hasOwn(BROWSER_COMMANDS, name) ? BROWSER_COMMANDS[name] : undefined
  if (command === undefined) {
    err.write(`${name}: unknown command (try help)\n`)
    return 'failed'
  }
  try {
    await command(st, args)
    return 'ok'
  } catch (e) {
    err.write(`${name}: ${messageOf(e)}\n`)
    return 'failed'
  }
}

/** Reads commands from `input` until its end or quit; a prompt (fs, date, cwd) only on a terminal. Returns the exit status. */
export async function runBrowser(st: BrowserState, input: Readable, err: Writable, tty: boolean): Promise<number> {
  const rl = createInterface({ input, ...(tty ? { output: st.out, terminal: true } : { terminal: false }) })
  const prompt = (): void => {
    if (!tty) return
    rl.setPrompt(`${st.fs} @ ${formatNs(st.atNs)} ${st.cwd}> `)
    rl.prompt()
  }
  let failed = false
  prompt()
  for await (const line of rl) {
    const r = await executeLine(st, line, err)
    if (r === 'exit') break
    if (r === 'failed') failed = true
    prompt()
  }
  rl.close()
  return failed ? 1 : 0
}
