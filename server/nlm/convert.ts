/*
 * Versions 1 and 3 (XNFS chapter 10) and version 4 (RFC 1813 §6) describe the
 * same lock with 32-bit and 64-bit bounds. Everything past the program's
 * handlers sees the 64-bit form (types.ts); these are the conversions and the
 * overflow rules, in one place.
 */
import type { nlm4_holder, nlm4_lock, nlm_holder, nlm_lock, nlm_stats } from '../../xdr/generated/nlm.ts'
import { LOCK_EOF } from '../../locks/types.ts'
import type { LockRange } from '../../locks/types.ts'
import { NLM } from './types.ts'
import type { NlmHolder, NlmLock, NlmStat } from './types.ts'

const U32_END = 1n << 32n

/**
 * v4 bounds: a length of 0 means "to end of file" (RFC 1813 §6.1.4). A range
 * that would end past the last 64-bit offset names bytes no file can have:
 * NLM4_FBIG (§6.3.1 gives that status to requests a server cannot represent).
 */
export function range4(offset: bigint, len: bigint): LockRange | null {
  if (len === 0n) return { start: offset, end: LOCK_EOF }
  const end = offset + len
  return end > LOCK_EOF ? null : { start: offset, end }
}

/**
 * v1/v3 bounds are 32 bits; length 0 is "to end of file" (the whole 64-bit
 * space, so it conflicts with v4 locks past 4 GiB as the owner meant). A range
 * whose end overflows 32 bits stops at 4 GiB: a 32-bit client cannot name a
 * byte past it, and v1/v3 have no FBIG status to refuse with.
 */
export function range32(offset: number, len: number): LockRange {
  const start = BigInt(offset)
  if (len === 0) return { start, end: LOCK_EOF }
  const end = start + BigInt(len)
  return { start, end: end > U32_END ? U32_END : end }
}

/** The v4 wire form of a range: length 0 for one that runs to end of file. */
export function wire4(r: LockRange): { l_offset: bigint; l_len: bigint } {
  return { l_offset: r.start, l_len: r.end === LOCK_EOF ? 0n : r.end - r.start }
}

/**
 * The v1/v3 wire form of a range held by someone (TEST's holder): a range
 * reaching past 32 bits is reported from its clamped start "to end of file",
 * the nearest truth a 32-bit client can be told (the Linux server clamps too).
 */
export function wire32(r: LockRange): { l_offset: number; l_len: number } {
  const start = r.start >= U32_END ? 0xffffffff : Number(r.start)
  if (r.end === LOCK_EOF || r.end > U32_END) return { l_offset: start, l_len: 0 }
  return { l_offset: start, l_len: Number(r.end - r.start) }
}

export function lockOf4(l: nlm4_lock): NlmLock | null {
  const r = range4(l.l_offset, l.l_len)
  if (r === null) return null
  return { callerName: l.caller_name, fh: l.fh, oh: l.oh, svid: l.svid, start: r.start, end: r.end }
}

export function lockOf32(l: nlm_lock): NlmLock {
  const r = range32(l.l_offset, l.l_len)
  return { callerName: l.caller_name, fh: l.fh, oh: l.oh, svid: l.uppid, start: r.start, end: r.end }
}

export function lock4(l: NlmLock): nlm4_lock {
  return { caller_name: l.callerName, fh: l.fh, oh: l.oh, svid: l.svid, ...wire4(l) }
}

export function lock32(l: NlmLock): nlm_lock {
  return { caller_name: l.callerName, fh: l.fh, oh: l.oh, uppid: l.svid, ...wire32(l) }
}

export function holder4(h: NlmHolder): nlm4_holder {
  return { exclusive: h.exclusive, svid: h.svid, oh: h.oh, ...wire4(h) }
}

export function holder32(h: NlmHolder): nlm_holder {
  return { exclusive: h.exclusive, uppid: h.svid, oh: h.oh, ...wire32(h) }
}

/**
 * v1/v3 know five statuses. Deadlock is a denial there; a handle, a read-only
 * file system or a failure the server cannot name is "no locks" (what the
 * Linux server answers v1/v3 clients for the same cases).
 */
export function stat32(s: NlmStat): nlm_stats {
  switch (s) {
    case NLM.GRANTED:
    case NLM.DENIED:
    case NLM.DENIED_NOLOCKS:
    case NLM.BLOCKED:
    case NLM.DENIED_GRACE_PERIOD:
      return s
    case NLM.DEADLCK:
      return NLM.DENIED
    default:
      return NLM.DENIED_NOLOCKS
  }
}
