/*
 * tsnfs restore: browse the backup catalog at a date and restore from it (issue 16 §6, §7).
 * Without a one-shot option it runs the browser (restore-browser.ts) on stdin: a prompt on a
 * terminal, commands from a pipe or from --script FILE otherwise.
 */
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { Catalog } from '../backup/catalog/catalog.ts'
import { chainAt } from '../backup/catalog/chain.ts'
import type { RestoreExecutor } from '../backup/catalog/plan.ts'
import { restorePlan } from '../backup/catalog/plan.ts'
import { dirAt, findFiles } from '../backup/catalog/queries.ts'
import { TapeFileExecutor } from '../backup/catalog/tape-executor.ts'
import { createBackupFormat } from '../backup/index.ts'
import { parseCommand, runCommand, UsageError } from './common.ts'
import { BROWSER_HELP, resolvePath, runBrowser } from './restore-browser.ts'
import type { BrowserState } from './restore-browser.ts'
import { parseDate } from './restore-date.ts'
import { backupLine, lsLine, planText, searchLine, toJson } from './restore-print.ts'

export const RESTORE_USAGE = `usage: tsnfs restore --catalog DB --fs EXPORT [--date T] [--script FILE] [--tapes DIR]
       tsnfs restore --catalog DB --fs EXPORT [--date T] (--list PATH | --search PATTERN | --plan PATH... | --backups) [--json]
  browse the backup catalog DB of export EXPORT as it was at T (default now) and restore from it;
  commands come from a terminal, a pipe or --script FILE; --tapes DIR: restore reads the tape files
  DIR/LABEL.tape (a pool directory) on this host into --to DIR:
${BROWSER_HELP.replace(/^commands:\n/, '')}`

const OPTIONS = {
  catalog: { type: 'string' },
  fs: { type: 'string' },
  date: { type: 'string' },
  script: { type: 'string' },
  tapes: { type: 'string' },
  list: { type: 'string' },
  search: { type: 'string' },
  plan: { type: 'boolean' },
  backups: { type: 'boolean' },
  json: { type: 'boolean' },
} as const

/** `executor` carries out `restore` (the DMA wires the NDMP one); without it `restore` prints the plan and fails. */
export function restore(argv: string[], executor: RestoreExecutor | null = null): Promise<number> {
  return runCommand('restore', RESTORE_USAGE, argv, async () => {
    const { values, positionals } = parseCommand(argv, OPTIONS)
    if (values.catalog === undefined) throw new UsageError('--catalog DB is required')
    if (values.fs === undefined) throw new UsageError('--fs EXPORT is required')
    const oneShots = [values.list !== undefined, values.search !== undefined, values.plan === true, values.backups === true].filter(Boolean).length
    if (oneShots > 1) throw new UsageError('one of --list, --search, --plan, --backups at a time')
    if (positionals.length > 0 && values.plan !== true) throw new UsageError(`unexpected argument ${positionals[0] ?? ''}`)
    if (values.script !== undefined && oneShots > 0) throw new UsageError('--script runs the browser; it does not go with a one-shot option')
    const atNs = parseDate(values.date ?? 'now')
    const cat = Catalog.open(values.catalog, { create: false })
    try {
      const tapes = values.tapes
      const ex = tapes === undefined ? executor : new TapeFileExecutor({
        tapeFile: label => join(tapes, `${label}.tape`),
        format: createBackupFormat(),
        target: to => {
          if (to === null) throw new UsageError('restoring from tape files on this host needs --to DIR')
          return { kind: 'host', dir: to }
        },
        name: `tape files in ${tapes}`,
      })
      const st: BrowserState = { cat, fs: values.fs, atNs, cwd: '/', selection: new Set(), executor: ex, out: process.stdout }
      if (oneShots === 0) {
        const input = values.script === undefined ? process.stdin : createReadStream(values.script)
        const tty = values.script === undefined && process.stdin.isTTY && process.stdout.isTTY
        return await runBrowser(st, input, process.stderr, tty)
      }
      process.stdout.write(oneShot(st, values, positionals))
      return 0
    } finally {
      cat.close()
    }
  })
}

/** The one-shot forms' output (exported for the in-process tests). */
export function oneShot(st: BrowserState, values: { list?: string; search?: string; plan?: boolean; backups?: boolean; json?: boolean }, paths: string[]): string {
  const json = values.json === true
  if (values.list !== undefined) {
    const d = dirAt(st.cat, st.fs, resolvePath('/', values.list), st.atNs)
    return json ? `${toJson({ dir: d.dir, chain: d.chain.backups.map(b => b.id), entries: d.entries })}\n` : `${d.entries.map(lsLine).join('\n')}\n`
  }
  if (values.search !== undefined) {
    const hits = findFiles(st.cat, st.fs, values.search, { beforeNs: st.atNs })
    return json ? `${toJson(hits)}\n` : hits.map(h => `${searchLine(h)}\n`).join('')
  }
  if (values.backups === true) {
    const chain = chainAt(st.cat, st.fs, st.atNs)
    const all = st.cat.listBackups({ filesystem: st.fs })
    if (json) return `${toJson({ chain: chain.backups.map(b => b.id), backups: all })}\n`
    const inChain = new Set(chain.backups.map(b => b.id))
    return all.map(b => `${inChain.has(b.id) ? '*' : ' '} ${backupLine(b)} ${b.status}\n`).join('')
  }
  if (paths.length === 0) throw new UsageError('--plan needs at least one PATH')
  const plan = restorePlan(st.cat, st.fs, paths.map(p => resolvePath('/', p)), st.atNs)
  return json ? `${toJson(plan)}\n` : planText(plan)
}
