/*
 * tsnfs: the command-line entry. Subcommands are dispatched by name; each
 * lives in its own file under cli/.
 */
import { bench } from './bench.ts'
import { exportsCommand } from './exports.ts'
import { serve } from './serve.ts'
import { showmount } from './showmount.ts'
import { stats } from './stats.ts'

const COMMANDS: Readonly<Record<string, (argv: string[]) => Promise<number>>> = {
  serve,
  bench,
  showmount,
  exports: exportsCommand,
  stats,
}

const USAGE = `usage: tsnfs <command> [options]

commands:
  serve [--exports FILE] [--port N] [--host ADDR] [--state-dir DIR] [--portmap [PORT]] [--log-level LEVEL]
        serve NFSv3, MOUNT and PORTMAP on TCP and UDP port N (default 2049); without --exports,
        one read-write in-memory export /export open to any client
        [--metrics HOST:PORT] Prometheus text on http://HOST:PORT/metrics
        [--rpcbind | --no-rpcbind] register with the system rpcbind on 111 (default: when one
        answers, the port is not 0 and --portmap is not 111); unregistered on exit
  showmount [-e | -a | -d] [--port N] HOST[:PORT]
        the export list (-e), mount points (-a), directories (-d) or hosts of an NFS server
  exports --check FILE
        validate an export list without serving it (exit 0 or 1)
  stats [--metrics HOST:PORT]
        print the counters of a server started with --metrics (default 127.0.0.1:9049)
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
