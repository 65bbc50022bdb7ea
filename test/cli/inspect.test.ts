/*
 * tsnfs ls, cat, stat, df (and the help texts) against a server started
 * here on a host directory: output checked against node:fs, exit codes and
 * error messages exact.
 */
import t from 'tap'
import { mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { ensureBuilt, localExport, ok, tsnfs } from './run-cli.ts'

// Top-level awaits, not t.before: the root test must not start (and end) before the server is up.
await ensureBuilt()
const { exp, url, host, server: s } = await localExport(t)

t.test('ls: names, -a, -l, -R, a file, errors', async t => {
  mkdirSync(host('ls/sub'), { recursive: true })
  writeFileSync(host('ls/b.txt'), 'x'.repeat(1234))
  writeFileSync(host('ls/.hidden'), '')
  writeFileSync(host('ls/sub/inner'), 'in')
  const when = new Date('2020-01-02T03:04:05Z')
  utimesSync(host('ls/b.txt'), when, when)
  const r = await ok(t, ['ls', url('/ls')])
  t.equal(r.stdout, 'b.txt\nsub\n', 'sorted, dot files hidden')
  t.equal((await tsnfs(['ls', '-a', url('/ls')])).stdout, '.\n..\n.hidden\nb.txt\nsub\n')

  await tsnfs(['ln', '-s', 'b.txt', url('/ls/link')])
  const long = await ok(t, ['ls', '-l', url('/ls')])
  const lines = long.stdout.split('\n')
  t.equal(lines[0], '-rw-r--r-- 1 0 0 1234 Jan  2  2020 b.txt', 'long line of a file (old: year shown)')
  t.match(lines[1], /^lrwxrwxrwx 1 0 0 {4}5 \w{3} [ \d]\d \d\d:\d\d link -> b\.txt$/, 'symlink with its target')
  t.match(lines[2], /^drwxr-xr-x 2 0 0 +\d+ \w{3} [ \d]\d \d\d:\d\d sub$/)
  t.equal(lines.length, 4)

  const rec = await tsnfs(['ls', '-R', url('/ls')])
  t.equal(rec.stdout, `${exp}/ls:\nb.txt\nlink\nsub\n\n${exp}/ls/sub:\ninner\n`)
  const file = await tsnfs(['ls', '-l', url('/ls/sub/inner')])
  t.match(file.stdout, new RegExp(`^-rw-r--r-- 1 0 0 2 .* ${exp}/ls/sub/inner\n$`))

  const missing = await tsnfs(['ls', url('/ls/nope')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, `tsnfs ls: ${url('/ls/nope')}: No such file or directory\n`)
  const usage = await tsnfs(['ls'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^tsnfs ls: missing URL\nusage: tsnfs ls/)
  const badFlag = await tsnfs(['ls', '-z', url()])
  t.equal(badFlag.code, 2)
  t.match(badFlag.stderr, /Unknown option '-z'/)
  const badUrl = await tsnfs(['ls', 'nfs://127.0.0.1/x?bogus=1'])
  t.equal(badUrl.code, 1)
  t.equal(badUrl.stderr, "tsnfs ls: nfs://127.0.0.1/x?bogus=1: unknown option 'bogus'\n")
})

t.test('cat: bytes to stdout, several files, errors', async t => {
  const bin = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 255))
  writeFileSync(host('cat1'), bin)
  writeFileSync(host('cat2'), 'two\n')
  const r = await ok(t, ['cat', url('/cat1'), url('/cat2')])
  t.ok(r.raw.equals(Buffer.concat([bin, Buffer.from('two\n')])), 'byte-exact, in order')
  mkdirSync(host('catdir'))
  const bad = await tsnfs(['cat', url('/catdir'), url('/nope'), url('/cat2')])
  t.equal(bad.code, 1)
  t.equal(bad.stdout, 'two\n', 'goes on after a failure')
  t.equal(bad.stderr, `tsnfs cat: ${url('/catdir')}: Is a directory\ntsnfs cat: ${url('/nope')}: No such file or directory\n`)
})

t.test('stat: every attribute, times with nanoseconds, -L', async t => {
  writeFileSync(host('st'), 'hello')
  utimesSync(host('st'), new Date('2021-05-06T07:08:09.123Z'), new Date('2021-05-06T07:08:09.456Z'))
  const hs = statSync(host('st'), { bigint: true })
  // The nanoseconds the host file has (utimes takes float seconds: .123 may land as .122999…).
  const ns = (v: bigint): string => String(v % 1_000_000_000n).padStart(9, '0')
  const r = await ok(t, ['stat', url('/st')])
  const lines = r.stdout.split('\n')
  t.equal(lines[0], `  File: ${exp}/st`)
  t.match(lines[1], /^ {2}Size: 5 +Used: \d+ +Type: regular file$/)
  t.equal(lines[2], '  Mode: (0644/-rw-r--r--)  Uid: 0  Gid: 0')
  t.match(lines[3], new RegExp(`^ Nlink: 1 +Fileid: \\d+  Fsid: 0x[0-9a-f]+$`))
  t.match(lines[3], ` Fileid: ${String(hs.ino)} `, 'fileid is the host inode (local backend)')
  t.equal(lines[4], '  Rdev: 0,0')
  t.equal(lines[5], `Access: 2021-05-06 07:08:09.${ns(hs.atimeNs)} +0000`)
  t.equal(lines[6], `Modify: 2021-05-06 07:08:09.${ns(hs.mtimeNs)} +0000`)
  t.match(lines[7], /^Change: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000$/)
  t.ok(hs.isFile())
  await tsnfs(['ln', '-s', 'st', url('/st-link')])
  t.match((await tsnfs(['stat', url('/st-link')])).stdout, `  File: ${exp}/st-link -> st\n  Size: 2 `)
  t.match((await tsnfs(['stat', '-L', url('/st-link')])).stdout, /Size: 5 .*Type: regular file/)
  const bad = await tsnfs(['stat', url('/none')])
  t.equal(bad.code, 1)
  t.equal(bad.stderr, `tsnfs stat: ${url('/none')}: No such file or directory\n`)
})

t.test('df and df -h', async t => {
  const r = await ok(t, ['df', url()])
  const [head, row] = r.stdout.split('\n')
  t.match(head, /^Filesystem +1K-blocks +Used +Available +Use% +Files +FFree$/)
  t.match(row, new RegExp(`^127\\.0\\.0\\.1:${exp} +\\d+ +\\d+ +\\d+ +\\d+% +\\d+ +\\d+$`))
  const h = await tsnfs(['df', '-h', url()])
  t.match(h.stdout.split('\n')[1], /^\S+ +[\d.]+[KMGTP]? +[\d.]+[KMGTP]? +[\d.]+[KMGTP]? +\d+%/)
  const bad = await tsnfs(['df', s.url('/no-such-export')])
  t.equal(bad.code, 1)
  t.equal(bad.stderr, `tsnfs df: ${s.url('/no-such-export')}: cannot mount /no-such-export: No such file or directory (MNT3ERR_NOENT)\n`)
})

t.test('help texts', async t => {
  const main = await tsnfs(['--help'])
  for (const c of ['ls', 'cat', 'cp', 'stat', 'mkdir', 'rm', 'mv', 'ln', 'df', 'shell']) t.match(main.stdout, new RegExp(`\\n  ${c} `), c)
  const ls = await ok(t, ['ls', '--help'])
  t.match(ls.stdout, /^usage: tsnfs ls \[-l\] \[-a\] \[-R\] URL/)
})
