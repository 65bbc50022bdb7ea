/*
 * tsnfs: the command-line entry. Subcommands are dispatched by name
 * (cli/dispatch.ts); each lives in its own file under cli/.
 */

import { tsnfs } from './dispatch.ts'

void tsnfs(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
