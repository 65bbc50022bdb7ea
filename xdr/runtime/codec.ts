import { encodedBytesOf } from './encoded-list.ts'
import { XdrDecodeError, XdrEncodeError } from './errors.ts'
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

/** RFC 4506 §4.13: a counted array; the count is capped by `max` and by the bytes left before allocating. */
export function decodeArray<T>(r: XdrReader, codec: Codec<T>, max: number, minElementSize: number): T[] {
  const n = r.arrayLength(max, minElementSize)
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(codec.decode(r))
  return out
}

export function encodeArray<T>(w: XdrWriter, codec: Codec<T>, v: readonly T[], max: number): void {
  if (v.length > max) throw new XdrEncodeError(`array<${max}>: ${v.length} elements`)
  w.u32(v.length)
  for (const e of v) codec.encode(w, e)
}

/** RFC 4506 §4.12: exactly n elements, no count on the wire. */
export function decodeFixedArray<T>(r: XdrReader, codec: Codec<T>, n: number, minElementSize: number): T[] {
  if (n * minElementSize > r.remaining) throw new XdrDecodeError('XDR_SHORT_BUFFER', `array[${n}] cannot fit`)
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(codec.decode(r))
  return out
}

export function encodeFixedArray<T>(w: XdrWriter, codec: Codec<T>, v: readonly T[], n: number): void {
  if (v.length !== n) throw new XdrEncodeError(`array[${n}]: ${v.length} elements`)
  for (const e of v) codec.encode(w, e)
}

/**
 * RFC 4506 §4.19: an optional-data linked list (TRUE, item, TRUE, item, ..., FALSE),
 * decoded iteratively: lists of thousands of directory entries must not recurse.
 */
export function listCodec<T>(item: Codec<T>): Codec<T[]> {
  return {
    encode(w, v) {
      // A list made by encodedList: its items' bytes as they are (encoded-list.ts).
      const bytes = encodedBytesOf(v)
      if (bytes !== undefined) w.encoded(bytes)
      else {
        for (const e of v) {
          w.bool(true)
          item.encode(w, e)
        }
      }
      w.bool(false)
    },
    decode(r) {
      const out: T[] = []
      while (r.bool()) out.push(item.decode(r))
      return out
    },
  }
}
