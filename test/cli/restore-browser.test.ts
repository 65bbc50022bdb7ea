/*
 * The restore browser in-process (its commands on real streams over a real catalog), the hand-off
 * of a plan to a RestoreExecutor, and date parsing.
 */
import t from 'tap'
import { Readable, PassThrough } from 'node:stream'
import { join } from 'node:path'
import { Catalog } from '../../backup/catalog/catalog.ts'
import type { ExecuteOptions, RestoreExecutor, RestorePlan } from '../../backup/catalog/plan.ts'
import type { RestoreSummary } from '../../backup/types.ts'
import { runBrowser, resolvePath } from '../../cli/restore-browser.ts'
import type { BrowserState } from '../../cli/restore-browser.ts'
import { formatNs, parseDate } from '../../cli/restore-date.ts'
import { oneShot } from '../../cli/restore.ts'
import { buildChain, sec } from '../backup/catalog-fixture.ts'

/** Takes plans as the NDMP executor would, and says what it would have restored. */
class CountingExecutor implements RestoreExecutor {
  readonly name = 'counting'
  readonly runs: Array<{ plan: RestorePlan; opts: ExecuteOptions }> = []
  execute(plan: RestorePlan, opts: ExecuteOptions): Promise<RestoreSummary> {
    this.runs.push({ plan, opts })
    opts.onLog?.('info', `${plan.steps.length} backup(s) to read`)
    const files = plan.steps.flatMap(s => s.files)
    return Promise.resolve({ files: files.filter(f => f.type !== 'dir').length, dirs: files.filter(f => f.type === 'dir').length, bytes: files.filter(f => f.type === 'file').reduce((n, f) => n + f.size, 0n), skipped: [], deleted: [] })
  }
}

const cat = Catalog.open(join(t.testdir(), 'cat.db'))
t.teardown(() => { cat.close(); })
const { ids } = buildChain(cat)

async function session(lines: string[], executor: RestoreExecutor | null): Promise<{ code: number; out: string; err: string; st: BrowserState }> {
  const out = new PassThrough()
  const err = new PassThrough()
  let o = ''
  let e = ''
  out.on('data', (d: Buffer) => (o += d.toString()))
  err.on('data', (d: Buffer) => (e += d.toString()))
  const st: BrowserState = { cat, fs: '/data', atNs: sec(3100), cwd: '/', selection: new Set(), executor, out }
  const code = await runBrowser(st, Readable.from([lines.join('\n')]), err, false)
  return { code, out: o, err: e, st }
}

t.test('restore hands the plan to the executor', async t => {
  const ex = new CountingExecutor()
  const r = await session(['restore', 'add /b top.txt', 'cd /c', 'add z.bin', 'restore --to /srv/back --overwrite', 'date @5000', 'restore'], ex)
  t.equal(r.code, 1)
  t.match(r.err, /^restore: the restore list is empty \(add PATH first\)\n/)
  t.match(r.err, /restore: \/c\/z\.bin: not in the backup of that date\n/, 'after the date moved past /c\'s removal the plan refuses it')
  t.equal(ex.runs.length, 1)
  const run = ex.runs[0]
  t.same(run?.opts.to, '/srv/back')
  t.equal(run?.opts.overwrite, true)
  t.same(run?.plan.selection, ['/b', '/c/z.bin', '/top.txt'])
  t.same(run?.plan.steps.map(s => s.backup.id), [ids.l2])
  t.match(r.out, /info: 1 backup\(s\) to read\nrestored 3 file\(s\), 1 dir\(s\), 12 bytes\n/)
  t.match(r.out, /date 1970-01-01T01:23:20Z: chain #1 L0, #5 L1\n/)
  t.same([...r.st.selection].sort(), ['/b', '/c/z.bin', '/top.txt'], 'the list survives a date change')
})

t.test('bad input: a message, and the browser goes on', async t => {
  const r = await session(['ls a b', 'search', 'versions', 'add', 'del', 'cd "unclosed', 'restore extra', 'date yesterday', 'date 2026-02-30', 'date 2026-01-01T25:00', 'cd /nope', 'help', 'pwd', 'date'], null)
  t.equal(r.code, 1)
  t.equal(r.err, [
    'ls: one path at most',
    'search: search PATTERN',
    'versions: versions PATH',
    'add: add PATH...',
    'del: del PATH...',
    'unterminated quote',
    'restore: restore [--to DIR|EXPORT] [--overwrite]',
    'date: yesterday: not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM], @SECONDS or now)',
    'date: 2026-02-30: no such day',
    'date: 2026-01-01T25:00: not a time of day',
    'cd: /nope: no such directory in the backup of that date',
    '',
  ].join('\n'))
  t.match(r.out, /^commands:\n {2}ls \[PATH\]/)
  t.match(r.out, /\n\/\ndate 1970-01-01T00:51:40Z: chain #1 L0, #2 L1, #3 L2\n$/, 'pwd and date still answer')
})

t.test('paths and dates', async t => {
  t.equal(resolvePath('/a/b', '../c/./d'), '/a/c/d')
  t.equal(resolvePath('/a', '/x//y/'), '/x/y')
  t.throws(() => resolvePath('/a', '../..'), { code: 'CLI_USAGE', message: '../..: outside the backed-up filesystem' })
  t.equal(parseDate('2026-12-05'), BigInt(Date.UTC(2026, 11, 5)) * 1_000_000n + 86_400_000_000_000n - 1n, 'a day means its end')
  t.equal(parseDate('2026-12-05T14:03'), BigInt(Date.UTC(2026, 11, 5, 14, 3)) * 1_000_000n)
  t.equal(parseDate('2026-12-05 14:03:07.5+01:00'), BigInt(Date.UTC(2026, 11, 5, 13, 3, 7)) * 1_000_000n + 500_000_000n)
  t.equal(parseDate('2026-12-05T14:03:07.123456789Z') % 1_000_000_000n, 123_456_789n)
  t.equal(parseDate('@1000'), sec(1000))
  t.equal(parseDate('now', 5000), 5_000_000_000n)
  t.throws(() => parseDate('2026-12-05T10:00+15:00'), { message: /no such time zone offset/ })
  t.equal(formatNs(sec(1000)), '1970-01-01T00:16:40Z')
  t.equal(formatNs(sec(1000) + 5n), '1970-01-01T00:16:40.000000005Z')
})

t.test('one-shot forms: --list --json, --search, --backups', async t => {
  const st: BrowserState = { cat, fs: '/data', atNs: sec(2500), cwd: '/', selection: new Set(), executor: null, out: new PassThrough() }
  const j = JSON.parse(oneShot(st, { list: '/a', json: true }, [])) as { dir: string; chain: number[]; entries: Array<{ name: string; version: { size: string; mtimeNs: { iso: string } } }> }
  t.equal(j.dir, '/a')
  t.same(j.chain, [ids.l0, ids.l1])
  t.same(j.entries.map(e => [e.name, e.version.size]), [['x.txt', '11']])
  t.equal(j.entries[0]?.version.mtimeNs.iso, '1970-01-01T00:25:00.000000005Z')

  t.equal(oneShot(st, { search: 'x.txt' }, []), '/a/x.txt  #1 L0 1970-01-01T00:16:40Z  4 bytes\n/a/x.txt  #2 L1 1970-01-01T00:33:20Z  11 bytes\n', 'versions up to the date')
  const found = JSON.parse(oneShot(st, { search: 'x.txt', json: true }, [])) as Array<{ path: string; sha256: string }>
  t.same(found.map(v => v.sha256), ['sha-x-v1', 'sha-x-v2-longer'])

  const backups = oneShot(st, { backups: true }, [])
  t.match(backups, /^\* backup #1 level 0 of \/data started 1970-01-01T00:16:40Z on T0\/1 done\n\* backup #2 level 1/)
  t.match(backups, / {2}backup #4 level 3 of \/data started 1970-01-01T00:53:20Z failed\n {2}backup #5 level 1/, 'the chain at the date is starred')
  t.throws(() => oneShot(st, { plan: true }, []), { code: 'CLI_USAGE', message: '--plan needs at least one PATH' })
})
