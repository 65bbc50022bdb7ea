import type { XdrReader } from './reader.ts'
import { XdrWriter } from './writer.ts'

/** One XDR type: how it goes onto the wire and comes back (the compact-encoding codec shape). */
export interface Codec<T> {
  encode(w: XdrWriter, value: T): void
  decode(r: XdrReader): T
}

/** RFC 4506 §4.16: void encodes nothing. */
export const xdr_void: Codec<undefined> = {
  encode() {
    /* nothing on the wire */
  },
  decode() {
    return undefined
  },
}

export const xdr_int: Codec<number> = { encode: (w, v) => { w.i32(v) }, decode: (r) => r.i32() }
export const xdr_uint: Codec<number> = { encode: (w, v) => { w.u32(v) }, decode: (r) => r.u32() }
export const xdr_hyper: Codec<bigint> = { encode: (w, v) => { w.i64(v) }, decode: (r) => r.i64() }
export const xdr_uhyper: Codec<bigint> = { encode: (w, v) => { w.u64(v) }, decode: (r) => r.u64() }
export const xdr_bool: Codec<boolean> = { encode: (w, v) => { w.bool(v) }, decode: (r) => r.bool() }

/** Encode one value to a single Buffer (tests, small messages). */
export function encodeToBuffer<T>(codec: Codec<T>, value: T): Buffer {
  const w = new XdrWriter(256)
  codec.encode(w, value)
  return w.toBuffer()
}
