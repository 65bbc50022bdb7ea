/*
 * The schedule file: cron times and their next runs (UTC, across month and year ends, leap
 * days, day-of-month OR day-of-week), level rules, and bad lines named by line number.
 */
import t from 'tap'
import { join } from 'node:path'
import { nextRun, parseCron, previousRun } from '../../dma/schedule/cron.ts'
import { parseSchedule, loadSchedule } from '../../dma/schedule/file.ts'
import { levelOn, parseLevelRule } from '../../dma/schedule/levels.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'

const at = (iso: string): Date => new Date(iso)

t.test('next runs', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['30 2 * * *', '2026-01-31T02:30:00Z', '2026-02-01T02:30:00Z'], // the run itself is not "after"
    ['30 2 * * *', '2026-01-31T02:29:59Z', '2026-01-31T02:30:00Z'],
    ['0 0 31 * *', '2026-01-31T00:00:00Z', '2026-03-31T00:00:00Z'], // no Feb 31, no Apr... Mar 31
    ['0 0 31 * *', '2026-03-31T00:00:00Z', '2026-05-31T00:00:00Z'], // April has 30 days
    ['0 0 29 2 *', '2026-03-01T00:00:00Z', '2028-02-29T00:00:00Z'], // the next leap day
    ['59 23 31 12 *', '2026-12-31T23:59:00Z', '2027-12-31T23:59:00Z'], // across a year end
    ['0 12 * * sun', '2026-12-05T13:00:00Z', '2026-12-06T12:00:00Z'], // 2026-12-05 is a Saturday
    ['0 12 * * 7', '2026-12-05T13:00:00Z', '2026-12-06T12:00:00Z'], // 7 is Sunday too
    ['0 12 1 * mon', '2026-12-05T13:00:00Z', '2026-12-07T12:00:00Z'], // dom OR dow: the Monday first
    ['0 12 1 * mon', '2026-12-28T13:00:00Z', '2027-01-01T12:00:00Z'], // ... or the 1st
    ['*/15 * * * *', '2026-06-30T23:50:00Z', '2026-07-01T00:00:00Z'],
    ['5/20 1-3 * * *', '2026-06-01T01:45:00Z', '2026-06-01T02:05:00Z'], // 5/20 is 5,25,45
    ['0 3,15 * jan-mar/2 *', '2026-01-31T16:00:00Z', '2026-03-01T03:00:00Z'], // Jan and Mar only
    ['0 0 * * mon-fri', '2026-12-04T00:00:00Z', '2026-12-07T00:00:00Z'], // Friday to Monday
  ]
  for (const [expr, after, want] of cases) {
    const time = parseCron(expr.split(' '))
    t.equal(nextRun(time, at(after))?.toISOString(), at(want).toISOString(), `${expr} after ${after}`)
  }
})

t.test('previous runs', async (t) => {
  const time = parseCron('0 2 * * *'.split(' '))
  t.equal(previousRun(time, at('2026-03-01T01:00:00Z'))?.toISOString(), '2026-02-28T02:00:00.000Z', 'the day before, across a month end')
  t.equal(previousRun(time, at('2026-03-01T02:00:00Z'))?.toISOString(), '2026-03-01T02:00:00.000Z', 'at the slot itself')
})

t.test('bad times', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['60 * * * *', /minute: 60 is outside 0-59/],
    ['* 24 * * *', /hour: 24 is outside 0-23/],
    ['* * 0 * *', /day of month: 0 is outside 1-31/],
    ['* * * 13 *', /month: 13 is outside 1-12/],
    ['* * * foo *', /month: "foo" is not a number or a name/],
    ['* * * * 8', /day of week: 8 is outside 0-7/],
    ['5-1 * * * *', /the range 5-1 runs backwards/],
    ['*/0 * * * *', /a step of 0/],
    ['0 0 30 2 *', /never runs/],
    ['0 0 * *', /5 fields/],
  ]
  for (const [expr, msg] of bad) t.throws(() => parseCron(expr.split(' ')), { message: msg }, expr)
})

t.test('level rules', async (t) => {
  const week = ['2026-12-06', '2026-12-07', '2026-12-08', '2026-12-09', '2026-12-10', '2026-12-11', '2026-12-12'].map((d) => at(`${d}T01:00:00Z`)) // Sun..Sat
  const levels = (rule: ReturnType<typeof parseLevelRule>): number[] => week.map((d) => levelOn(rule, d))
  t.strictSame(levels(parseLevelRule('levels', '0@sun,1-6')), [0, 1, 2, 3, 4, 5, 6], 'full on Sunday, incrementals rising')
  t.strictSame(levels(parseLevelRule('levels', '0@sun,1')), [0, 1, 1, 1, 1, 1, 1], 'a shorter list repeats: differential')
  t.strictSame(levels(parseLevelRule('levels', '0@fri,1-6')), [2, 3, 4, 5, 6, 0, 1], 'from the day after the full')
  t.strictSame(levels(parseLevelRule('levels', '0@sun,5@wed,1-3')), [0, 1, 2, 5, 3, 3, 3], 'two fixed days')
  t.strictSame(levels(parseLevelRule('level', '1')), [1, 1, 1, 1, 1, 1, 1])
  t.throws(() => parseLevelRule('level', '10'), { code: 'DMA_BAD_LEVEL' })
  t.throws(() => parseLevelRule('levels', '1-6'), { code: 'DMA_BAD_LEVEL', message: /no level is tied to a day/ })
  t.throws(() => parseLevelRule('levels', '0@sun,1-7'), { code: 'DMA_BAD_LEVEL', message: /7 levels for 6 other days/ })
  t.throws(() => parseLevelRule('levels', '0@sun,1@sun,2'), { code: 'DMA_BAD_LEVEL', message: /sun has two levels/ })
  t.throws(() => parseLevelRule('levels', '0@funday,1'), { code: 'DMA_BAD_LEVEL', message: /not a weekday/ })
})

t.test('exports', async (t) => {
  t.match(parseExport('nas1:/export'), { kind: 'ndmp', host: 'nas1', port: 10000, filesystem: '/export' })
  t.match(parseExport('10.0.0.5:10001:/a/b'), { kind: 'ndmp', host: '10.0.0.5', port: 10001, filesystem: '/a/b' })
  t.match(parseExport('[::1]:10000:/x'), { kind: 'ndmp', host: '::1', port: 10000 })
  t.match(parseExport('file:data.tar', '/base'), { kind: 'file', path: '/base/data.tar' })
  t.throws(() => parseExport('nas1'), { code: 'DMA_BAD_EXPORT' })
  t.throws(() => parseExport('nas1:70000:/x'), { code: 'DMA_BAD_EXPORT', message: /port 70000/ })
})

t.test('a schedule file', async (t) => {
  const text = [
    '# nightly backups',
    '',
    '30 1 * * *   nightly  nas1:/export       pools/main   levels=0@sun,1-6  exclude=*.tmp exclude=cache',
    '0 4 1 * *    monthly  nas2:10001:/home   /abs/pool    level=0  tape=tapes:10000   # a three-way backup',
  ].join('\n')
  const entries = parseSchedule(text, 'sched', '/etc/tsnfs')
  t.equal(entries.length, 2)
  const [a, b] = entries
  t.match(a, { name: 'nightly', pool: '/etc/tsnfs/pools/main', exclude: ['*.tmp', 'cache'], line: 3 })
  t.equal(a?.levels.text, 'levels=0@sun,1-6')
  t.match(b, { name: 'monthly', pool: '/abs/pool', tapeAgent: 'tapes:10000', line: 4, export: { host: 'nas2', port: 10001, filesystem: '/home' } })
})

t.test('bad lines name their line', async (t) => {
  const ok = '0 1 * * * job nas:/x pool level=0'
  const bad: Array<[string, RegExp]> = [
    ['0 1 * * * job nas:/x pool', /sched:2: 8 fields/],
    ['0 25 * * * job nas:/x pool level=0', /sched:2: hour: 25 is outside 0-23/],
    ['0 1 * * * .job nas:/x pool level=0', /sched:2: "\.job" is not a job name/],
    ['0 1 * * * job2 nas pool level=0', /sched:2: "nas" is not HOST\[:PORT\]:\/PATH/],
    ['0 1 * * * job2 nas:/x pool level=12', /sched:2: a level is 0 to 9/],
    ['0 1 * * * job2 nas:/x pool exclude=x', /sched:2: no level rule/],
    ['0 1 * * * job2 nas:/x pool level=0 level=1', /sched:2: two level rules/],
    ['0 1 * * * job2 nas:/x pool level=0 speed=fast', /sched:2: "speed=fast" is not an option/],
    ['0 1 * * * job nas:/y pool level=0', /sched:2: job job is also on line 1/],
  ]
  for (const [line, msg] of bad) {
    t.throws(() => parseSchedule(`${ok}\n${line}\n`, 'sched', '/'), { code: 'DMA_SCHEDULE_SYNTAX', message: msg }, line)
  }
  const dir = t.testdir({ s: `${ok}\n\n# c\n0 1 * * * j2 nas:/x pool levels=0@sun,x\n` })
  await t.rejects(loadSchedule(join(dir, 's')), { code: 'DMA_SCHEDULE_SYNTAX', message: new RegExp(`${join(dir, 's')}:4: a level is 0 to 9, not "x"`) })
})
