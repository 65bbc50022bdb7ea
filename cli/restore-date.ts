/*
 * Points in time for `tsnfs restore`: nanoseconds since the epoch, read and printed in UTC (a
 * catalog is shared between hosts; a zone given in the text is honoured).
 */
import { UsageError } from './common.ts'

const NS_PER_MS = 1_000_000n
const DAY_END_NS = 86_400_000_000_000n - 1n

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/

/**
 * 'now'; '@SECONDS' (since the epoch); 'YYYY-MM-DD' (the end of that day: what the tree held
 * that day, so the day's backups count); 'YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|±HH:MM]' (that instant).
 */
export function parseDate(text: string, nowMs = Date.now()): bigint {
  const s = text.trim()
  if (s === 'now') return BigInt(nowMs) * NS_PER_MS
  if (/^@\d{1,12}$/.test(s)) return BigInt(s.slice(1)) * 1_000_000_000n
  const d = DATE.exec(s)
  if (d !== null) return dayStart(text, d[1], d[2], d[3]) + DAY_END_NS
  const m = DATE_TIME.exec(s)
  if (m === null) throw new UsageError(`${text}: not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM], @SECONDS or now)`)
  const hour = Number(m[4])
  const minute = Number(m[5])
  const second = Number(m[6] ?? '0')
  if (hour > 23 || minute > 59 || second > 59) throw new UsageError(`${text}: not a time of day`)
  const frac = BigInt((m[7] ?? '').padEnd(9, '0'))
  const zone = m[8] ?? 'Z'
  let offsetMin = 0
  if (zone !== 'Z') {
    const z = zone.replace(':', '')
    const mins = Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5))
    if (mins > 14 * 60) throw new UsageError(`${text}: no such time zone offset`)
    offsetMin = z.startsWith('-') ? -mins : mins
  }
  const secs = BigInt(hour * 3600 + minute * 60 + second - offsetMin * 60)
  return dayStart(text, m[1], m[2], m[3]) + secs * 1_000_000_000n + frac
}

function dayStart(text: string, y: string | undefined, mo: string | undefined, d: string | undefined): bigint {
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const ms = Date.UTC(year, month - 1, day)
  const back = new Date(ms)
  // Date.UTC rolls 2026-02-31 over into March; refuse it instead.
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day) throw new UsageError(`${text}: no such day`)
  return BigInt(ms) * NS_PER_MS
}

/** '2026-12-05T14:03:07Z' (fractions of a second only when there are some). */
export function formatNs(ns: bigint): string {
  const ms = ns / NS_PER_MS
  const iso = new Date(Number(ms)).toISOString()
  const frac = ns % 1_000_000_000n
  return frac === 0n ? iso.replace(/\.\d{3}Z$/, 'Z') : iso.replace(/\.\d{3}Z$/, `.${frac.toString().padStart(9, '0').replace(/0+$/, '')}Z`)
}
