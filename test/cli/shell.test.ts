/*
 * tsnfs shell driven through a pipe: a script of commands, stdout asserted
 * whole; failures reported on stderr while the shell goes on; get/put
 * byte-exact; no prompt when stdin is not a terminal.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ensureBuilt, localExport, tsnfs } from './run-cli.ts'

await ensureBuilt()
const { url, host, exp } = await localExport(t)
const local = join(dirname(exp), 'local')
mkdirSync(local, { recursive: true })

t.test('a scripted session', async t => {
  mkdirSync(host('home/docs'), { recursive: true })
  writeFileSync(host('home/docs/readme'), 'read me\n')
  const old = new Date('2019-03-04T05:06:07Z')
  utimesSync(host('home/docs/readme'), old, old)
  const big = randomBytes(2 * 1024 * 1024 + 17)
  writeFileSync(join(local, 'upload.bin'), big)
  const script = [
    'pwd',
    'ls',
    'cd docs',
    'pwd',
    'ls -l',
    'cat readme',
    '# a comment, then a blank line',
    '',
    'put upload.bin',
    'put upload.bin "with space.bin"',
    'get readme',
    'get upload.bin back.bin',
    'mkdir -p a/b',
    'mv readme a/b',
    'ln -s a/b/readme sym',
    'ln upload.bin hard',
    'ls',
    'cat sym',
    'rm "with space.bin"',
    'rmdir a/b',
    'cd ..',
    'ls -a docs/a/b',
    'help',
    'exit',
    'pwd',
  ].join('\n')
  const r = await tsnfs(['shell', url('/home')], { input: `${script}\n`, cwd: local })
  t.equal(r.stderr, 'rmdir: a/b: Directory not empty\n', 'the one failing command, reported')
  t.equal(r.code, 1, 'exit status 1: a command failed')
  const helpAt = r.stdout.indexOf('commands (paths are relative')
  t.ok(helpAt > 0, 'help printed')
  t.equal(
    r.stdout.slice(0, helpAt),
    [
      '/home',
      'docs',
      '/home/docs',
      '-rw-r--r-- 1 0 0 8 Mar  4  2019 readme',
      'read me',
      'a',
      'hard',
      'sym',
      'upload.bin',
      'with space.bin',
      'read me',
      '.',
      '..',
      'readme',
      '',
    ].join('\n'),
    'stdout of the whole session, no prompts, nothing after exit',
  )
  t.ok(readFileSync(host('home/docs/upload.bin')).equals(big), 'put byte-exact')
  t.ok(readFileSync(host('home/docs/hard')).equals(big))
  t.equal(statSync(host('home/docs/hard')).ino, statSync(host('home/docs/upload.bin')).ino, 'ln: a hard link')
  t.equal(readlinkSync(host('home/docs/sym')), 'a/b/readme')
  t.notOk(existsSync(host('home/docs/with space.bin')), 'rm of a quoted name')
  t.equal(readFileSync(join(local, 'readme'), 'utf8'), 'read me\n', 'get into the local cwd')
  t.ok(readFileSync(join(local, 'back.bin')).equals(big), 'get byte-exact under a new name')
})

t.test('errors keep the shell going; stat, df, cd checks; exit status 0 when all succeed', async t => {
  mkdirSync(host('s2'))
  writeFileSync(host('s2/f'), 'abc')
  const bad = await tsnfs(['shell', url('/s2')], { input: 'cd nowhere\ncd f\nfrobnicate\ncat missing\nls -z\nmv f\necho "unterminated\npwd\n' })
  t.equal(bad.code, 1)
  t.equal(bad.stdout, '/s2\n', 'pwd still ran, cwd unchanged')
  t.equal(
    bad.stderr,
    [
      'cd: nowhere: No such file or directory',
      'cd: f: Not a directory',
      'frobnicate: unknown command (try help)',
      'cat: missing: No such file or directory',
      "ls: Unknown option '-z'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- \"-z\"",
      'mv: usage: mv FROM TO',
      'unterminated quote',
      '',
    ].join('\n'),
  )
  const good = await tsnfs(['shell', url('/s2')], { input: 'stat f\ndf\ncd /\npwd\nls s2\n' })
  t.equal(good.code, 0, good.stderr)
  t.match(good.stdout, /^ {2}File: f\n {2}Size: 3 /)
  t.match(good.stdout, /Filesystem +1K-blocks/)
  t.match(good.stdout, /\n\/\nf\n$/, 'cd / goes to the export root')
  const none = await tsnfs(['shell'])
  t.equal(none.code, 2)
  t.match(none.stderr, /^tsnfs shell: need exactly one URL\nusage: tsnfs shell URL/)
  const unreachable = await tsnfs(['shell', url('/nope/deeper')], { input: 'pwd\nls\n' })
  t.equal(unreachable.code, 1)
  t.equal(unreachable.stdout, '/nope/deeper\n')
  t.equal(unreachable.stderr, 'ls: .: No such file or directory\n')
})
