/*
 * The default clock: wall time with nanosecond steps, strictly increasing,
 * so two changes in a row always get different mtime/ctime (clients detect
 * changes by comparing them, RFC 1813 §3.3.2 guard, wcc_data).
 */
import type { Timespec } from '../types.ts'

const NS_PER_SEC = 1_000_000_000n

export function systemClock(): () => Timespec {
  const wallAtStart = BigInt(Date.now()) * 1_000_000n
  const hrAtStart = process.hrtime.bigint()
  let last = 0n
  return () => {
    let ns = wallAtStart + (process.hrtime.bigint() - hrAtStart)
    if (ns <= last) ns = last + 1n
    last = ns
    return { sec: Number(ns / NS_PER_SEC), nsec: Number(ns % NS_PER_SEC) }
  }
}
