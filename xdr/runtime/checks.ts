import { XdrEncodeError } from './errors.ts'

/*
 * The range checks XdrWriter makes, as values: for encoders that write a
 * fixed-size struct straight into the writer's scratch (XdrWriter.room, the
 * generator's FLAT_ENCODERS) and refuse what XdrWriter refuses, in the same
 * words.
 */

export function checkU32(v: number): number {
  // `v >>> 0 === v` holds exactly for integers in [0, 2^32).
  if (v >>> 0 !== v) throw new XdrEncodeError(`unsigned int out of range: ${String(v)}`)
  return v
}

export function checkI32(v: number): number {
  if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) throw new XdrEncodeError(`int out of range: ${String(v)}`)
  return v
}

export function checkU64(v: bigint): bigint {
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new XdrEncodeError(`unsigned hyper out of range: ${String(v)}`)
  return v
}

export function checkI64(v: bigint): bigint {
  if (v < -0x8000_0000_0000_0000n || v > 0x7fff_ffff_ffff_ffffn) throw new XdrEncodeError(`hyper out of range: ${String(v)}`)
  return v
}
