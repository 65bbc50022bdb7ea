/*
 * The records of replies.drc (drc-store.ts; README.md "Duplicate request cache
 * file"; integers big-endian). A 16-byte header — magic `TSNFSDRC`, version,
 * CRC-32C of bytes 0–11 — then records back to back.
 *
 * Version 2 (written now): key length (u32, ≤ 512), reply length (u32,
 * ≤ 8192), export id (u32), seq (u64), CRC-32C of those 20 bytes, the key and
 * the reply (chained), the key bytes, the reply bytes. The (export, seq) names
 * the change the reply describes: a sync standby writes a REPL_DRC_HELD entry
 * while that change is still on its way (the two durable writes overlap), so
 * the file may hold an entry whose change never became durable here; such an
 * entry is never used (drc-store.ts). Seq 0 names no change (usable always).
 *
 * Version 1 (read still): key length, reply length, CRC, key, reply; its
 * entries were written only once their change was durable, so they read as seq 0.
 */
import { crc32c } from '../../vfs/engine/crc32c.ts'
import { REPL_MAXDRCKEY, REPL_MAXDRCREPLY } from '../../xdr/generated/replication.ts'

export const DRC_FILE_MAGIC = 'TSNFSDRC'
/** The version written; version 1 files are read too. */
export const DRC_FILE_VERSION = 2
export const DRC_HEADER = 16
const HEAD_V1 = 12
const HEAD_V2 = 24

export interface DrcRecord {
  key: string
  reply: Buffer
  exportId: number
  seq: bigint
}

export function drcHeader(version = DRC_FILE_VERSION): Buffer {
  const h = Buffer.alloc(DRC_HEADER)
  h.write(DRC_FILE_MAGIC, 0, 'latin1')
  h.writeUInt32BE(version, 8)
  h.writeUInt32BE(crc32c(h.subarray(0, 12)), 12)
  return h
}

/** The file's version (1 or 2) when the header is ours, else why not. Magic first, then the version, then the CRC. */
export function checkDrcHeader(b: Buffer): number | string {
  if (b.length < DRC_HEADER) return 'shorter than its header'
  if (b.toString('latin1', 0, 8) !== DRC_FILE_MAGIC) return 'not a cached replies file (magic)'
  const v = b.readUInt32BE(8)
  if (v !== 1 && v !== DRC_FILE_VERSION) return `format version ${String(v)}, this tsnfs reads versions 1 and ${String(DRC_FILE_VERSION)}`
  if (b.readUInt32BE(12) !== crc32c(b.subarray(0, 12))) return 'header CRC mismatch'
  return v
}

/** A version 2 record. */
export function encodeRecord(key: string, reply: Buffer, exportId = 0, seq = 0n): Buffer {
  const k = Buffer.from(key)
  const r = Buffer.alloc(HEAD_V2 + k.length + reply.length)
  r.writeUInt32BE(k.length, 0)
  r.writeUInt32BE(reply.length, 4)
  r.writeUInt32BE(exportId, 8)
  r.writeBigUInt64BE(seq, 12)
  k.copy(r, HEAD_V2)
  reply.copy(r, HEAD_V2 + k.length)
  r.writeUInt32BE(crc32c(r.subarray(HEAD_V2), crc32c(r.subarray(0, 20))), 20)
  return r
}

/** A version 1 record (what older builds wrote; for tests of reading them). */
export function encodeRecordV1(key: string, reply: Buffer): Buffer {
  const k = Buffer.from(key)
  const r = Buffer.alloc(HEAD_V1 + k.length + reply.length)
  r.writeUInt32BE(k.length, 0)
  r.writeUInt32BE(reply.length, 4)
  k.copy(r, HEAD_V1)
  reply.copy(r, HEAD_V1 + k.length)
  r.writeUInt32BE(crc32c(r.subarray(HEAD_V1), crc32c(r.subarray(0, 8))), 8)
  return r
}

/** The record of `version` at `at`, or why it is not one (lengths are checked against the caps before anything is read by them). */
export function decodeRecord(b: Buffer, at: number, version: number): (DrcRecord & { next: number }) | string {
  const head = version === 1 ? HEAD_V1 : HEAD_V2
  const crcAt = head - 4
  if (b.length - at < head) return 'short record head'
  const kl = b.readUInt32BE(at)
  const rl = b.readUInt32BE(at + 4)
  if (kl === 0 || kl > REPL_MAXDRCKEY || rl > REPL_MAXDRCREPLY) return `lengths out of range (key ${String(kl)}, reply ${String(rl)})`
  const end = at + head + kl + rl
  if (end > b.length) return 'short record'
  if (b.readUInt32BE(at + crcAt) !== crc32c(b.subarray(at + head, end), crc32c(b.subarray(at, at + crcAt)))) return 'record CRC mismatch'
  const exportId = version === 1 ? 0 : b.readUInt32BE(at + 8)
  const seq = version === 1 ? 0n : b.readBigUInt64BE(at + 12)
  return { key: b.toString('utf8', at + head, at + head + kl), reply: b.subarray(at + head + kl, end), exportId, seq, next: end }
}

/** The record head's size in the version written (for size bounds). */
export const DRC_RECORD_HEAD = HEAD_V2
