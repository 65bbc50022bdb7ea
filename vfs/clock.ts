/*
 * The time backends stamp changes with, in nanoseconds: Date.now's milliseconds plus the
 * sub-millisecond part of process.hrtime. That part comes from another clock, whose millisecond
 * wraps apart from Date.now's: left alone, a later change could get a ctime up to 1 ms older than
 * an earlier one's, and clients order replies by ctime (ours drops an older one as a late reply).
 * Within that jitter the clock never goes back; a real step of the wall clock (more than 1 ms
 * back) is followed, as ext4 follows it.
 */
import type { Timespec } from './types.ts'

let lastNs = 0n

export function nowNs(): bigint {
  let ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n)
  if (ns <= lastNs && lastNs - ns < 1_000_000n) ns = lastNs + 1n
  lastNs = ns
  return ns
}

export function nowTimespec(): Timespec {
  const ns = nowNs()
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) }
}
