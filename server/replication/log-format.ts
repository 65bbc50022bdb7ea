/*
 * The change log's on-disk format (server/replication/README.md, "Change log
 * format"): segment files named by their first sequence number, each a
 * 28-byte header and then framed records. Pure functions over buffers; the
 * file I/O is in log-segment.ts.
 *
 *   header:  magic "TSNFSRCL" (8) | version u32 | export id u32 | first seq u64 | CRC32C u32 of the 24 bytes before
 *   record:  length u32 | CRC32C u32 | seq u64 | body (length bytes)
 *   body:    map edit count u32 | map edits (28 bytes each, log-edits.ts) | change (repl_change XDR)
 *
 * All integers big-endian (as XDR). A record's CRC covers its length field,
 * seq and change bytes, so a flipped length is caught like a flipped byte of
 * data. The magic and the version stay at offsets 0 and 8 in every version,
 * so any reader can tell another version from damage. Version 2 added the
 * map edits (version 1 bodies were the change alone); a version 1 segment is
 * refused by name (REPL_LOG_VERSION) like any other.
 */
import { crc32c } from '../../vfs/engine/crc32c.ts'
import { REPL_MAXDATA } from '../../xdr/generated/replication.ts'
import { ReplicationError } from './log-types.ts'

export const LOG_MAGIC = Buffer.from('TSNFSRCL', 'latin1')
export const LOG_VERSION = 2
export const HEADER_BYTES = 28
export const RECORD_HEADER_BYTES = 16
/** An edit count of 0 and the smallest repl_change (a 4-byte op, a 12-byte ref and an empty times array); anything shorter is damage. */
export const MIN_CHANGE_BYTES = 24
/**
 * The largest change the codec can produce: a WRITE carrying its 1 MiB of data
 * (the log stores WRITEs without data, but the codec allows it) plus slack for
 * the fixed fields; a symlink (4 KiB target), the four times and the map edits fit in the slack.
 * A record claiming more is damage, refused before anything is allocated.
 */
export const MAX_CHANGE_BYTES = REPL_MAXDATA + 16 * 1024

const SEGMENT_NAME = /^(\d{20})\.log$/

/** `00000000000000000001.log`: zero-padded, so names sort in sequence order. */
export function segmentName(firstSeq: bigint): string {
  return `${firstSeq.toString().padStart(20, '0')}.log`
}

export function parseSegmentName(name: string): bigint | null {
  const m = SEGMENT_NAME.exec(name)
  return m?.[1] === undefined ? null : BigInt(m[1])
}

export function encodeHeader(exportId: number, firstSeq: bigint): Buffer {
  const h = Buffer.alloc(HEADER_BYTES)
  LOG_MAGIC.copy(h, 0)
  h.writeUInt32BE(LOG_VERSION, 8)
  h.writeUInt32BE(exportId, 12)
  h.writeBigUInt64BE(firstSeq, 16)
  h.writeUInt32BE(crc32c(h.subarray(0, 24)), 24)
  return h
}

export function corrupt(file: string, offset: number, what: string): ReplicationError {
  return new ReplicationError('REPL_LOG_CORRUPT', `change log segment ${file}: ${what} at offset ${String(offset)}`)
}

/**
 * Checks a whole header read from `file` (named for `nameSeq`): another
 * format version is refused as REPL_LOG_VERSION before anything else of the
 * header is trusted; damage or a file of another export is REPL_LOG_CORRUPT.
 */
export function checkHeader(h: Buffer, file: string, exportId: number, nameSeq: bigint): void {
  if (h.length < HEADER_BYTES) throw corrupt(file, h.length, `header of ${String(h.length)} bytes, ${String(HEADER_BYTES)} expected,`)
  if (!h.subarray(0, 8).equals(LOG_MAGIC)) throw corrupt(file, 0, 'no change log magic')
  const version = h.readUInt32BE(8)
  if (version !== LOG_VERSION) {
    throw new ReplicationError(
      'REPL_LOG_VERSION',
      `change log segment ${file}: format version ${String(version)}, this tsnfs reads version ${String(LOG_VERSION)} only`,
    )
  }
  if (h.readUInt32BE(24) !== crc32c(h.subarray(0, 24))) throw corrupt(file, 24, 'header CRC mismatch')
  const id = h.readUInt32BE(12)
  if (id !== exportId) throw corrupt(file, 12, `header of export ${String(id)}, not ${String(exportId)},`)
  const first = h.readBigUInt64BE(16)
  if (first !== nameSeq) throw corrupt(file, 16, `header first seq ${String(first)}, the name says ${String(nameSeq)},`)
}

/**
 * A framed record around change bytes already encoded at `frame[16..]`
 * (the writer leaves room): fills in length, seq and the CRC in place.
 */
export function sealRecord(frame: Buffer, seq: bigint): Buffer {
  frame.writeUInt32BE(frame.length - RECORD_HEADER_BYTES, 0)
  frame.writeBigUInt64BE(seq, 8)
  frame.writeUInt32BE(recordCrc(frame), 4)
  return frame
}

function recordCrc(frame: Buffer): number {
  return crc32c(frame.subarray(8), crc32c(frame.subarray(0, 4)))
}

export type Parsed =
  | { kind: 'record'; seq: bigint; next: number }
  /** The bytes end inside this record (a torn tail when at the end of a file). */
  | { kind: 'short'; need: number }
  | { kind: 'bad'; why: string }

/** The record at `buf[off..end)`; `need` for a short one is the record's full size when its length is known. */
export function parseRecord(buf: Buffer, off: number, end: number): Parsed {
  if (end - off < RECORD_HEADER_BYTES) return { kind: 'short', need: RECORD_HEADER_BYTES }
  const length = buf.readUInt32BE(off)
  if (length < MIN_CHANGE_BYTES || length > MAX_CHANGE_BYTES) return { kind: 'bad', why: `record length ${String(length)}` }
  const size = RECORD_HEADER_BYTES + length
  if (end - off < size) return { kind: 'short', need: size }
  const frame = buf.subarray(off, off + size)
  if (frame.readUInt32BE(4) !== recordCrc(frame)) return { kind: 'bad', why: 'record CRC mismatch' }
  return { kind: 'record', seq: frame.readBigUInt64BE(8), next: off + size }
}
