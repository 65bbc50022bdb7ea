/*
 * Level rules: which dump level a scheduled run takes on a given day.
 *   level=N            always N (level=1 every day is a differential scheme; 0 every day, fulls)
 *   levels=0@sun,1-6   0 on Sunday; the levels without a day (1..6) go to the other days in
 *                      week order starting the day after the first fixed day (Mon=1 .. Sat=6);
 *                      a shorter list repeats its last level (0@sun,1 is differential)
 * Days are weekday names or numbers (0 or 7 Sunday); several with `+` (0@sun+wed). The day is the
 * run's UTC day, as cron times are.
 */
import { DmaError } from '../errors.ts'
import { WEEKDAYS } from './cron.ts'

export interface LevelRule {
  /** Level by UTC weekday (0 = Sunday). */
  readonly byWeekday: readonly number[]
  readonly text: string
}

export const MAX_LEVEL = 9

export function parseLevel(text: string): number {
  if (!/^\d$/.test(text)) throw new DmaError('DMA_BAD_LEVEL', `a level is 0 to ${MAX_LEVEL}, not "${text}"`)
  return Number(text)
}

function weekday(text: string): number {
  const named = WEEKDAYS.indexOf(text.toLowerCase())
  if (named >= 0) return named
  if (/^[0-7]$/.test(text)) return Number(text) % 7
  throw new DmaError('DMA_BAD_LEVEL', `"${text}" is not a weekday (sun..sat or 0..7)`)
}

/** Parses the value of `level=` (fixed) or `levels=` (rotation). */
export function parseLevelRule(key: 'level' | 'levels', text: string): LevelRule {
  if (key === 'level') {
    const n = parseLevel(text)
    return { byWeekday: Array<number>(7).fill(n), text: `level=${text}` }
  }
  const fixed = new Map<number, number>()
  const free: number[] = []
  let firstFixed: number | undefined
  for (const item of text.split(',')) {
    const at = item.indexOf('@')
    if (at >= 0) {
      const level = parseLevel(item.slice(0, at))
      for (const d of item.slice(at + 1).split('+')) {
        const day = weekday(d)
        if (fixed.has(day)) throw new DmaError('DMA_BAD_LEVEL', `levels=${text}: ${WEEKDAYS[day] ?? d} has two levels`)
        fixed.set(day, level)
        firstFixed ??= day
      }
      continue
    }
    const range = /^(\d)-(\d)$/.exec(item)
    if (range !== null) {
      const lo = parseLevel(range[1] ?? '')
      const hi = parseLevel(range[2] ?? '')
      if (hi < lo) throw new DmaError('DMA_BAD_LEVEL', `levels=${text}: the range ${item} runs backwards`)
      for (let l = lo; l <= hi; l++) free.push(l)
    } else {
      free.push(parseLevel(item))
    }
  }
  if (fixed.size === 0) throw new DmaError('DMA_BAD_LEVEL', `levels=${text}: no level is tied to a day (as 0@sun)`)
  const others = 7 - fixed.size
  if (free.length > others) throw new DmaError('DMA_BAD_LEVEL', `levels=${text}: ${free.length} levels for ${others} other days`)
  if (free.length === 0 && others > 0) throw new DmaError('DMA_BAD_LEVEL', `levels=${text}: no level for the other days`)
  const byWeekday = Array<number>(7).fill(0)
  let next = 0
  for (let i = 1; i <= 7; i++) {
    const day = ((firstFixed ?? 0) + i) % 7
    const f = fixed.get(day)
    if (f !== undefined) byWeekday[day] = f
    else byWeekday[day] = free[Math.min(next++, free.length - 1)] ?? 0
  }
  return { byWeekday, text: `levels=${text}` }
}

/** The level a run at `at` takes. */
export function levelOn(rule: LevelRule, at: Date): number {
  return rule.byWeekday[at.getUTCDay()] ?? 0
}
