/*
 * REPL_APPEND's arguments from the change log's own bytes. A logged record
 * holds exactly the change's repl_change XDR (README.md, "Change log
 * format"), so the sender copies those bytes onto the wire instead of
 * turning each change back into repl_change objects and encoding them again
 * (on the primary's main thread, once per change per standby: issue 15 §8).
 * The bytes on the wire are the generated repl_append_args' exactly; the
 * standby decodes them with the generated codec as before.
 *
 * A WRITE is logged with its data left out (an empty opaque); its bytes are
 * spliced in where that opaque is: repl_change starts with the body's
 * discriminant (4 bytes), and repl_write is ref (id 8, gen 4), offset (8),
 * length (4), data<> (RFC 4506 §4.10: its length word, the bytes, zero
 * padding to 4); the times follow.
 */
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrEncodeError } from '../../xdr/runtime/errors.ts'
import type { XdrWriter } from '../../xdr/runtime/writer.ts'
import { REPL_MAXBATCH, REPL_MAXDATA, REPL_MAXDRC, repl_drc_held_entry } from '../../xdr/generated/replication.ts'
import type { repl_drc_held_entry as DrcHeldEntry } from '../../xdr/generated/replication.ts'
import { encodeArray } from '../../xdr/runtime/codec.ts'

/** The body discriminant of a WRITE change (repl_body, op 5). */
const OP_WRITE = 5
/** Offset of a WRITE's data length word in repl_change: discriminant 4, ref 12, offset 8, length 4. */
const WRITE_DATA_AT = 28
const WRITE_LENGTH_AT = 24

/** One change as shipped: its XDR as logged, and for a WRITE logged without data, the data that goes in. */
export interface WireChange {
  xdr: Buffer
  data: Buffer | null
}

export interface WireAppend {
  epoch: bigint
  export_id: number
  first: bigint
  changes: WireChange[]
}

/** The XDR size of the change on the wire. */
export function wireSize(c: WireChange): number {
  return c.data === null ? c.xdr.length : c.xdr.length + Math.ceil(c.data.length / 4) * 4
}

function writeChange(w: XdrWriter, c: WireChange): void {
  const x = c.xdr
  if (x.length % 4 !== 0) throw new XdrEncodeError(`repl_change: ${String(x.length)} bytes, not a multiple of 4`)
  if (c.data === null) {
    w.fixedOpaque(x, x.length)
    return
  }
  // Only a WRITE logged without data takes data; its length field says how much.
  if (x.length < WRITE_DATA_AT + 4 || x.readUInt32BE(0) !== OP_WRITE || x.readUInt32BE(WRITE_DATA_AT) !== 0) {
    throw new XdrEncodeError('repl_change: data given for a change that is not a WRITE logged without data')
  }
  const length = x.readUInt32BE(WRITE_LENGTH_AT)
  if (c.data.length !== length || length > REPL_MAXDATA) throw new XdrEncodeError(`repl_change: write of length ${String(length)} given ${String(c.data.length)} bytes`)
  w.fixedOpaque(x.subarray(0, WRITE_DATA_AT), WRITE_DATA_AT)
  w.opaque(c.data, REPL_MAXDATA)
  const rest = x.subarray(WRITE_DATA_AT + 4)
  w.fixedOpaque(rest, rest.length)
}

/** Encodes as repl_append_args (decode is the generated one: what the standby runs). */
export const wireAppendArgs: Codec<WireAppend> = {
  encode(w, v) {
    if (v.changes.length > REPL_MAXBATCH) throw new XdrEncodeError(`repl_append_args: ${String(v.changes.length)} changes, at most ${String(REPL_MAXBATCH)}`)
    w.u64(v.epoch)
    w.u32(v.export_id)
    w.u64(v.first)
    w.u32(v.changes.length)
    for (const c of v.changes) writeChange(w, c)
  },
  decode() {
    // The caller only sends these; what arrives is read with the generated repl_append_args.
    throw new Error('wireAppendArgs only encodes: decode with repl_append_args')
  },
}

export interface WireAppendDrc {
  append: WireAppend
  entries: DrcHeldEntry[]
}

/** Encodes as repl_append_drc_args: the APPEND as above, then the cached replies that ride with it (REPL_APPEND_DRC). */
export const wireAppendDrcArgs: Codec<WireAppendDrc> = {
  encode(w, v) {
    wireAppendArgs.encode(w, v.append)
    encodeArray(w, repl_drc_held_entry, v.entries, REPL_MAXDRC)
  },
  decode() {
    throw new Error('wireAppendDrcArgs only encodes: decode with repl_append_drc_args')
  },
}
