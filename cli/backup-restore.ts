/*
 * tsnfs backup restore: a restore by our backup manager over NDMP (issue 16 §7). The catalog
 * (STATE/catalog.db, the completed jobs ingested first) gives the chain in force at --date and,
 * with --path, the objects to take from each backup; the export's NDMP agent restores them, to
 * the original place or into --to (an export path on that server), reading a chosen file's records
 * only (direct access). Nothing existing is replaced without --overwrite.
 */
import { parseArgs } from 'node:util'
import { CatalogError } from '../backup/catalog/schema.ts'
import { restoreExport } from '../dma/restore/run.ts'
import { parseDate } from './restore-date.ts'

export const RESTORE_SUBUSAGE = `  restore EXPORT [--date T] [--level-chain] [--path P]... [--to PATH] [--overwrite] [--tape HOST:PORT] [--json]
                                restore from the catalog over NDMP: the whole tree as at T (the
                                chain: level 0, then the later levels) or the paths P, to the
                                original place or into PATH (an export path of that server)
`

export interface RestoreIo {
  out(text: string): void
  err(text: string): void
}

/** Runs the subcommand; `usage` is thrown for a bad command line (the caller prints usage, exit 2). */
export async function backupRestore(argv: string[], io: RestoreIo, stateDir: (flag: string | undefined) => string, usage: (message: string) => Error): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      state: { type: 'string' },
      date: { type: 'string' },
      'level-chain': { type: 'boolean' },
      path: { type: 'string', multiple: true },
      to: { type: 'string' },
      overwrite: { type: 'boolean' },
      tape: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  })
  const [exportText] = positionals
  if (exportText === undefined || positionals.length > 1) throw usage('restore: EXPORT')
  const paths = values.path ?? []
  if (values['level-chain'] === true && paths.length > 0) throw usage('restore: --level-chain restores everything; it takes no --path')
  if (values.to !== undefined && !values.to.startsWith('/')) throw usage(`restore: --to ${values.to}: an absolute export path of the server`)
  let atNs: bigint
  try {
    atNs = parseDate(values.date ?? 'now')
  } catch (err) {
    throw usage(`restore: --date: ${err instanceof Error ? err.message : String(err)}`)
  }
  try {
    const out = await restoreExport({
      stateDir: stateDir(values.state),
      export: exportText,
      atNs,
      paths,
      to: values.to ?? null,
      overwrite: values.overwrite === true,
      ...(values.tape === undefined ? {} : { tapeAgent: values.tape }),
      onLog: (level, message) => {
        if (values.json !== true) io.err(`${level === 'info' ? '' : `${level}: `}${message}\n`)
      },
    })
    const result = { job: out.job, backups: out.plan.steps.map((s) => s.backup.id), bytesMoved: String(out.bytesMoved), reads: out.reads, missing: out.plan.missing }
    io.out(values.json === true ? `${JSON.stringify(result)}\n` : `restore job ${out.job.id} ${out.job.state}${out.job.error === undefined ? '' : `: ${out.job.error}`} (${out.bytesMoved} stream bytes read from tape)\n`)
    return out.job.state === 'done' ? 0 : 1
  } catch (err) {
    if (err instanceof CatalogError) {
      io.err(`tsnfs backup: ${err.code}: ${err.message}\n`)
      return 1
    }
    throw err
  }
}
