/*
 * pax extended header records (POSIX.1-2001, pax "Extended Header"): "LEN KEY=VALUE\n", LEN counting
 * the whole record in decimal. Values are bytes (GNU.dumpdir carries NULs), so records stay Buffers.
 */
import type { Timespec } from '../../vfs/types.ts'

/** Largest extended header we accept; a longer one is refused before allocation. */
export const MAX_PAX_BYTES = 16 * 1024 * 1024

export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  const body = Buffer.byteLength(key) + v.length + 3 // ' ', '=', '\n'
  // The length counts its own digits: grow until it is self-consistent.
  const digits = String(body).length
  let len = body + digits
  if (String(len).length !== digits) len = body + String(len).length
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'utf8'), v, Buffer.from('\n')])
}

/** pax time: seconds, with the nanoseconds as a decimal fraction when there are any. */
export function paxTime(t: Timespec): string {
  if (t.nsec === 0) return String(t.sec)
  const neg = t.sec < 0
  const sec = neg ? -(t.sec + 1) : t.sec
  const nsec = neg ? 1e9 - t.nsec : t.nsec
  return `${neg ? '-' : ''}${sec}.${String(nsec).padStart(9, '0')}`
}

export function parsePaxTime(s: string): Timespec | null {
  const m = /^(-?)(\d{1,15})(?:\.(\d{1,30}))?$/.exec(s)
  if (m === null) return null
  const sec = Number(m[2])
  const nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'))
  if (m[1] === '-') return nsec === 0 ? { sec: -sec, nsec: 0 } : { sec: -sec - 1, nsec: 1e9 - nsec }
  return { sec, nsec }
}

export type PaxParse = { ok: true; records: Map<string, Buffer> } | { ok: false; at: number; reason: string }

/** Parses a whole extended header body; `at` is the record's offset within it when one is bad. */
export function parsePax(body: Buffer): PaxParse {
  const records = new Map<string, Buffer>()
  let pos = 0
  while (pos < body.length) {
    if (body[pos] === 0) break // NUL padding after the last record
    const sp = body.indexOf(0x20, pos)
    if (sp === -1 || sp - pos > 20) return { ok: false, at: pos, reason: 'pax record has no length' }
    const lenText = body.toString('ascii', pos, sp)
    if (!/^\d+$/.test(lenText)) return { ok: false, at: pos, reason: `pax record length '${lenText}' is not decimal` }
    const len = Number(lenText)
    if (len < sp - pos + 4 || pos + len > body.length) {
      return { ok: false, at: pos, reason: `pax record length ${len} does not fit the header` }
    }
    const end = pos + len
    if (body[end - 1] !== 0x0a) return { ok: false, at: pos, reason: 'pax record does not end in a newline' }
    const eq = body.indexOf(0x3d, sp + 1)
    if (eq === -1 || eq >= end - 1) return { ok: false, at: pos, reason: 'pax record has no keyword=value' }
    const key = body.toString('utf8', sp + 1, eq)
    records.set(key, Buffer.from(body.subarray(eq + 1, end - 1)))
    pos = end
  }
  return { ok: true, records }
}
