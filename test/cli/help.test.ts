/*
 * Every command says how to use it (issue 11 point 7): `--help` and `-h`
 * print the command's own usage on stdout and exit 0 (df keeps `-h` for
 * human-readable sizes, as df(1)); `tsnfs --version` and `-V` print the
 * package's version; `tsnfs help CMD` is `tsnfs CMD --help`.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, tsnfs, tsnfsBatch } from './cli.ts'

// Every command cli/main.ts dispatches (read from the table in cli/dispatch.ts, so a new command is covered without a list to keep).
const COMMANDS = [...readFileSync(join(ROOT, 'cli', 'dispatch.ts'), 'utf8').matchAll(/^ {2}([a-z-]+): \(a\) => import\(/gm)].map((m) => m[1] ?? '')

// One process for the usage of every command, and six started one by one.
t.setTimeout(300_000)

t.test('--help and -h on every command', async (t) => {
  t.ok(COMMANDS.length >= 25 && COMMANDS.includes('serve') && COMMANDS.includes('witness'), `commands read from cli/dispatch.ts: ${COMMANDS.join(' ')}`)
  const runs = COMMANDS.flatMap((cmd) => (cmd === 'df' ? ['--help'] : ['--help', '-h']).map((flag) => [cmd, flag] as const))
  // All in one process, one after the other (what each prints and returns is the test; the next
  // test and df -h below start real processes): about 55 process starts were 30 s of CPU.
  const results = await tsnfsBatch(runs)
  t.equal(results.length, runs.length, 'a result for every run')
  for (const [i, [cmd, flag]] of runs.entries()) {
    const r = results[i]
    if (r === undefined) throw new Error(`no result for ${cmd} ${flag}`)
    t.equal(r.code, 0, `${cmd} ${flag}: exit 0 ${r.stderr}`)
    t.match(r.stdout, new RegExp(`^usage: tsnfs ${cmd} `), `${cmd} ${flag}: its own usage on stdout`)
    t.equal(r.stderr, '', `${cmd} ${flag}: nothing on stderr`)
  }
  const df = await tsnfs(['df', '-h'])
  t.equal(df.code, 2, 'df -h is human-readable sizes, so without a URL it is a usage error')
  t.match(df.stderr, /missing URL/)
})

t.test('help after other arguments, and tsnfs help CMD', async (t) => {
  const late = await tsnfs(['serve', '--port', '0', '--help'])
  t.equal(late.code, 0, 'serve --port 0 --help prints the usage instead of serving')
  t.match(late.stdout, /^usage: tsnfs serve /)
  const viaHelp = await tsnfs(['help', 'umount'])
  t.equal(viaHelp.code, 0)
  t.match(viaHelp.stdout, /^usage: tsnfs umount /)
  const unknown = await tsnfs(['help', 'nope'])
  t.equal(unknown.code, 2, 'help of an unknown command is a usage error')
  t.match(unknown.stderr, /unknown command "nope"/)
})

t.test('--version and -V', async (t) => {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
  for (const flag of ['--version', '-V']) {
    const r = await tsnfs([flag])
    t.equal(r.code, 0, `${flag}: exit 0`)
    t.equal(r.stdout, `tsnfs ${version}\n`, `${flag}: the package version`)
  }
})
