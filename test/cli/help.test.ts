/*
 * Every command says how to use it (issue 11 point 7): `--help` and `-h`
 * print the command's own usage on stdout and exit 0 (df keeps `-h` for
 * human-readable sizes, as df(1)); `tsnfs --version` and `-V` print the
 * package's version; `tsnfs help CMD` is `tsnfs CMD --help`.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, tsnfs } from './cli.ts'

// Every command cli/main.ts dispatches (read from its table, so a new command is covered without a list to keep).
const COMMANDS = [...readFileSync(join(ROOT, 'cli', 'main.ts'), 'utf8').matchAll(/^ {2}([a-z-]+): \(a\) => import\(/gm)].map((m) => m[1] ?? '')

// About 40 process starts: on a loaded 2-core machine each takes a second or more.
t.setTimeout(300_000)

t.test('--help and -h on every command', async (t) => {
  t.ok(COMMANDS.length >= 25 && COMMANDS.includes('serve') && COMMANDS.includes('witness'), `commands read from cli/main.ts: ${COMMANDS.join(' ')}`)
  const runs = COMMANDS.flatMap((cmd) => (cmd === 'df' ? ['--help'] : ['--help', '-h']).map((flag) => [cmd, flag] as const))
  // Four at a time (start-up is mostly waiting on the disk and the loader); asserted in order.
  const results: Awaited<ReturnType<typeof tsnfs>>[] = []
  for (let i = 0; i < runs.length; i += 4) results.push(...(await Promise.all(runs.slice(i, i + 4).map(([cmd, flag]) => tsnfs([cmd, flag])))))
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
