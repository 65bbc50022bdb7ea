/*
 * tsnfs: the command-line entry. Subcommands are dispatched by name; each
 * lives in its own file under cli/.
 */
import { serve } from './serve.ts'

const COMMANDS: Readonly<Record<string, (argv: string[]) => Promise<number>>> = {
  serve,
}

const USAGE = `usage: tsnfs <command> [options]

commands:
  serve [--exports FILE] [--port N] [--host ADDR] [--state-dir DIR] [--portmap [PORT]] [--log-level LEVEL]
        serve NFSv3, MOUNT and PORTMAP on TCP and UDP port N (default 2049); without --exports,
        one read-write in-memory export /export open to any client
`

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`tsnfs: unknown command "${name}"\n${USAGE}`)
    return 2
  }
  return command(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`tsnfs: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
