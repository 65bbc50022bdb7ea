/*
 * The id map edits a change log record carries (log format version 2,
 * README.md "Change log format"): between the record header and the change,
 * a count (u32, at most MAX_MAP_EDITS) and that many 28-byte edits:
 *
 *   kind u32 (1 bind, 2 unbind) | vid u64 | vid gen u32 | local id u64 | local gen u32
 *
 * An unbind's local fields are zero. Fixed-size entries, so a reader that
 * wants only the change skips them without decoding. They are the primary's
 * own (its backend's objects) and are never shipped to a standby.
 */
import type { MapEdit } from '../../vfs/replica/change.ts'
import { MAX_MAP_EDITS } from '../../vfs/replica/change.ts'
import type { XdrWriter } from '../../xdr/runtime/writer.ts'

const EDIT_BYTES = 28
const BIND = 1
const UNBIND = 2

export function encodeEdits(w: XdrWriter, edits: readonly MapEdit[]): void {
  if (edits.length > MAX_MAP_EDITS) throw new RangeError(`change log: ${String(edits.length)} map edits in one change, at most ${String(MAX_MAP_EDITS)}`)
  w.u32(edits.length)
  for (const e of edits) {
    w.u32(e.kind === 'bind' ? BIND : UNBIND)
    w.u64(e.vid.id)
    w.u32(e.vid.gen)
    w.u64(e.kind === 'bind' ? e.local.id : 0n)
    w.u32(e.kind === 'bind' ? e.local.gen : 0)
  }
}

/** Where the change starts in `body` (a record's bytes after its header), or null when the edits do not fit or are out of range. */
export function changeOffset(body: Buffer): number | null {
  if (body.length < 4) return null
  const n = body.readUInt32BE(0)
  if (n > MAX_MAP_EDITS || 4 + n * EDIT_BYTES > body.length) return null
  return 4 + n * EDIT_BYTES
}

/** The edits at the start of `body`; null when they are damaged (an unknown kind, a count past the cap). */
export function decodeEdits(body: Buffer): MapEdit[] | null {
  const end = changeOffset(body)
  if (end === null) return null
  const out: MapEdit[] = []
  for (let at = 4; at < end; at += EDIT_BYTES) {
    const kind = body.readUInt32BE(at)
    const vid = { id: body.readBigUInt64BE(at + 4), gen: body.readUInt32BE(at + 12) }
    if (kind === BIND) out.push({ kind: 'bind', vid, local: { id: body.readBigUInt64BE(at + 16), gen: body.readUInt32BE(at + 24) } })
    else if (kind === UNBIND) out.push({ kind: 'unbind', vid })
    else return null
  }
  return out
}
