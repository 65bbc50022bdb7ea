/*
 * tsnfs exports --check FILE: everything `serve` checks about an export
 * list before serving it (syntax, options, backends, export ids, and what
 * each backend needs of the host: a local export's directory), without
 * binding a port or writing state. For scripts and for `ExecReload`
 * guards: exit 0 or 1.
 */
import { parseArgs } from 'node:util'
import { checkBackends } from '../server/backend-check.ts'
import { BACKENDS } from '../server/backends.ts'
import { ExportsError } from '../server/exports/errors.ts'
import { loadExports, validateBackends } from '../server/exports/parse.ts'
import { ExportTable } from '../server/exports/table.ts'

export const EXPORTS_USAGE = `usage: tsnfs exports --check [--syntax-only] FILE
  validate an export list without serving it: prints "FILE: OK (N exports)", or the first
  syntax error, or every export the server would refuse (a local export's directory missing
  or not a directory), as FILE:LINE:COLUMN: reason; exit status 0 or 1
  --syntax-only   check the file alone, not the host it will be served on
`

export async function exportsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { check: { type: 'boolean' }, 'syntax-only': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  })
  if (values.help === true) {
    process.stdout.write(EXPORTS_USAGE)
    return 0
  }
  const [file, ...extra] = positionals
  if (values.check !== true || file === undefined || extra.length > 0) {
    process.stderr.write(EXPORTS_USAGE)
    return 2
  }
  try {
    const list = await loadExports(file)
    validateBackends(list, new Set(BACKENDS.keys()))
    // Builds the matchers and export ids: catches the id collisions serve would refuse.
    new ExportTable(list)
    const refused = values['syntax-only'] === true ? [] : await checkBackends(list)
    if (refused.length > 0) {
      process.stderr.write(refused.map((e) => `${e.message}\n`).join(''))
      return 1
    }
    const n = list.exports.length
    process.stdout.write(`${file}: OK (${String(n)} export${n === 1 ? '' : 's'})\n`)
    return 0
  } catch (err) {
    if (err instanceof ExportsError) process.stderr.write(`${err.message}\n`)
    else process.stderr.write(`${file}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}
