/* The pure pieces of the client commands: mode strings, sizes, times, the progress line, word splitting. */
import t from 'tap'
import { byteUnits, fullTime, humanSize, lsTime, modeString } from '../../cli/format.ts'
import { Progress } from '../../cli/progress.ts'
import { splitWords } from '../../cli/shell.ts'

t.test('modeString as ls prints it', async t => {
  t.equal(modeString('file', 0o644), '-rw-r--r--')
  t.equal(modeString('directory', 0o1777), 'drwxrwxrwt')
  t.equal(modeString('directory', 0o1770), 'drwxrwx--T')
  t.equal(modeString('file', 0o4755), '-rwsr-xr-x')
  t.equal(modeString('file', 0o2644), '-rw-r-Sr--')
  t.equal(modeString('symlink', 0o777), 'lrwxrwxrwx')
  t.equal(modeString('char', 0o600), 'crw-------')
  t.equal(modeString('fifo', 0), 'p---------')
})

t.test('sizes and times', async t => {
  t.equal(humanSize(0), '0')
  t.equal(humanSize(1023), '1023')
  t.equal(humanSize(1024), '1.0K')
  t.equal(humanSize(1025), '1.1K', 'rounded up as df does')
  t.equal(humanSize(10 * 1024 * 1024), '10M')
  t.equal(humanSize(5n * 1024n ** 4n), '5.0T')
  t.equal(byteUnits(512), '512 B')
  t.equal(byteUnits(1536), '1.5 KiB')
  process.env.TZ = 'UTC'
  const now = Date.UTC(2024, 5, 1)
  t.equal(lsTime(new Date(Date.UTC(2024, 4, 2, 3, 4)), now), 'May  2 03:04')
  t.equal(lsTime(new Date(Date.UTC(2020, 0, 12)), now), 'Jan 12  2020')
  t.equal(fullTime({ seconds: 0, nseconds: 5 }), '1970-01-01 00:00:00.000000005 +0000')
})

t.test('progress line: drawn only on a TTY, percentage, rate, ETA', async t => {
  const written: string[] = []
  const sink = { isTTY: true, columns: 100, write: (s: string) => written.push(s) > 0 }
  const p = new Progress(2048, sink)
  p.add(1024)
  t.match(p.line(Date.now()), /^ 50% \[={12}> {11}\] 1\.0 KiB \/ 2\.0 KiB {2}[\d.]+ \w+\/s {2}ETA \d+:\d\d$/)
  p.add(1024)
  p.finish()
  t.ok(written.length >= 2, 'drawn and finished')
  t.match(written[written.length - 2], /^\r100% \[={24}\] 2\.0 KiB \/ 2\.0 KiB/)
  t.equal(written[written.length - 1], '\n')
  t.equal(p.bytes, 2048)
  const silent: string[] = []
  const q = new Progress(10, { isTTY: false, write: (s: string) => silent.push(s) > 0 })
  q.add(10)
  q.finish()
  t.same(silent, [], 'nothing on a pipe')
})

t.test('shell word splitting', async t => {
  t.same(splitWords('ls -l  a\tb'), ['ls', '-l', 'a', 'b'])
  t.same(splitWords(`put "a b" 'c d' e\\ f ""`), ['put', 'a b', 'c d', 'e f', ''])
  t.same(splitWords('cat "say \\"hi\\""'), ['cat', 'say "hi"'])
  t.throws(() => splitWords('ls "open'), { code: 'CLI_USAGE' })
})
