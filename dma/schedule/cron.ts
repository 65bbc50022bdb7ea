/*
 * Cron times: five fields `min hour dom month dow`, each `*`, a number, a range `a-b`, a step
 * `*\/n` or `a-b/n`, or a comma list of those; months and weekdays also by name (jan, sun).
 * As in Vixie cron (crontab(5)), when both day-of-month and day-of-week are restricted a day
 * matching either runs. Times are UTC: no DST gaps or repeats, and the same on every host.
 */

export interface CronTime {
  readonly minutes: ReadonlySet<number>
  readonly hours: ReadonlySet<number>
  readonly days: ReadonlySet<number>
  readonly months: ReadonlySet<number>
  /** 0 = Sunday .. 6 = Saturday (7 is read as 0). */
  readonly weekdays: ReadonlySet<number>
  readonly daysRestricted: boolean
  readonly weekdaysRestricted: boolean
  readonly text: string
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']

interface FieldSpec {
  readonly name: string
  readonly min: number
  readonly max: number
  readonly names?: readonly string[]
  /** The first name's number (months: jan = 1). */
  readonly nameBase?: number
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { name: 'day of week', min: 0, max: 7, names: WEEKDAYS, nameBase: 0 },
]

/** A cron field's text that is wrong: the message says which field and why. */
export class CronSyntaxError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CronSyntaxError'
  }
}

function value(text: string, f: FieldSpec): number {
  const named = f.names?.indexOf(text.toLowerCase()) ?? -1
  if (named >= 0) return named + (f.nameBase ?? 0)
  if (!/^\d{1,2}$/.test(text)) throw new CronSyntaxError(`${f.name}: "${text}" is not a number${f.names === undefined ? '' : ' or a name'}`)
  const n = Number(text)
  if (n < f.min || n > f.max) throw new CronSyntaxError(`${f.name}: ${n} is outside ${f.min}-${f.max}`)
  return n
}

function parseField(text: string, f: FieldSpec): Set<number> {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d{1,2}))?$/.exec(part)
    if (m === null) throw new CronSyntaxError(`${f.name}: "${part}" is not a value, range or step`)
    const [, range = '', stepText] = m
    const step = stepText === undefined ? 1 : Number(stepText)
    if (step < 1) throw new CronSyntaxError(`${f.name}: a step of 0`)
    let lo: number
    let hi: number
    if (range === '*') {
      lo = f.min
      hi = f.max
    } else {
      const dash = range.indexOf('-')
      lo = value(dash < 0 ? range : range.slice(0, dash), f)
      // `5/15` is `5-max/15`, as Vixie cron reads it.
      hi = dash >= 0 ? value(range.slice(dash + 1), f) : stepText === undefined ? lo : f.max
      if (hi < lo) throw new CronSyntaxError(`${f.name}: the range ${range} runs backwards`)
    }
    for (let v = lo; v <= hi; v += step) out.add(v)
  }
  return out
}

/** Parses the five fields (already split on blanks). */
export function parseCron(fields: readonly string[]): CronTime {
  if (fields.length !== 5) throw new CronSyntaxError(`a time is 5 fields (min hour dom month dow), not ${fields.length}`)
  const [minutes, hours, days, months, weekdays] = FIELDS.map((f, i) => parseField(fields[i] ?? '', f)) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>]
  if (weekdays.delete(7)) weekdays.add(0)
  const time: CronTime = {
    minutes,
    hours,
    days,
    months,
    weekdays,
    daysRestricted: !(fields[2] ?? '').startsWith('*'),
    weekdaysRestricted: !(fields[4] ?? '').startsWith('*'),
    text: fields.join(' '),
  }
  if (nextRun(time, new Date(Date.UTC(2000, 0, 1))) === null) throw new CronSyntaxError(`"${time.text}" never runs (no such day)`)
  return time
}

function dayMatches(t: CronTime, d: Date): boolean {
  if (!t.months.has(d.getUTCMonth() + 1)) return false
  const dom = t.days.has(d.getUTCDate())
  const dow = t.weekdays.has(d.getUTCDay())
  if (t.daysRestricted && t.weekdaysRestricted) return dom || dow
  return dom && dow
}

const DAY_MS = 86_400_000
/** A day that can match (Feb 29 on a weekday) comes round within 28 years; past that, never. */
const SEARCH_DAYS = 29 * 366

/** The first run strictly after `after` (whole minutes, UTC), or null if the time never comes. */
export function nextRun(t: CronTime, after: Date): Date | null {
  const start = Math.floor(after.getTime() / 60_000) * 60_000 + 60_000
  let day = Math.floor(start / DAY_MS) * DAY_MS
  for (let i = 0; i < SEARCH_DAYS; i++, day += DAY_MS) {
    const d = new Date(day)
    if (!dayMatches(t, d)) continue
    // Minutes of this day at or after `start`, in order: the first that both fields allow.
    const fromMinute = day < start ? (start - day) / 60_000 : 0
    for (const h of [...t.hours].sort((a, b) => a - b)) {
      for (const m of [...t.minutes].sort((a, b) => a - b)) {
        if (h * 60 + m >= fromMinute) return new Date(day + (h * 60 + m) * 60_000)
      }
    }
  }
  return null
}

/** The last run at or before `at`, or null when none in the search window (used to find a missed slot). */
export function previousRun(t: CronTime, at: Date): Date | null {
  const end = Math.floor(at.getTime() / 60_000) * 60_000
  let day = Math.floor(end / DAY_MS) * DAY_MS
  for (let i = 0; i < SEARCH_DAYS; i++, day -= DAY_MS) {
    const d = new Date(day)
    if (!dayMatches(t, d)) continue
    const toMinute = day + DAY_MS > end ? (end - day) / 60_000 : 24 * 60
    for (const h of [...t.hours].sort((a, b) => b - a)) {
      for (const m of [...t.minutes].sort((a, b) => b - a)) {
        if (h * 60 + m <= toMinute) return new Date(day + (h * 60 + m) * 60_000)
      }
    }
  }
  return null
}
