/*
 * The on-disk format of a virtual tape (one tape cartridge = one file). It keeps what a real tape
 * has and NDMP's TAPE service shows (draft-skardal-ndmpv4 §3.7): records of the sizes written,
 * filemarks, end of data, a capacity with an early-warning zone before the physical end.
 *
 *   header (128 bytes): "TSNFTAPE" | version u32 (1) | header size u32 (128) | capacity u64 (0:
 *     unlimited) | early-warning bytes u64 | label length u32 | 28 reserved | label (≤ 64, UTF-8)
 *   then frames up to end of data (= end of file; writing in the middle erases what follows,
 *   as on a tape):
 *     frame header (16 bytes): magic u32 "TPFR" | kind u32 (1 record, 2 filemark) | length u32 |
 *     CRC-32 of the data u32 (0 for a filemark); then `length` bytes of record data.
 * All integers big-endian. Capacity and the early warning count bytes after the header (frame
 * headers included), so a full tape is full whatever record size filled it.
 * Shared: the NDMP tape service (server/ndmp/tape) writes and reads it; the backup manager
 * (dma/pool/tape-reader.ts) rereads its pool's tapes on this host to verify a backup.
 */
import { crc32 } from 'node:zlib'

export const TAPE_MAGIC = Buffer.from('TSNFTAPE', 'latin1')
export const TAPE_VERSION = 1
export const HEADER_SIZE = 128
export const FRAME_SIZE = 16
export const FRAME_MAGIC = 0x54504652 // "TPFR"
export const KIND_RECORD = 1
export const KIND_FILEMARK = 2
/** The largest record we write or accept: a TAPE_WRITE travels in one NDMP message (capped at 16 MiB). */
export const MAX_RECORD = 8 * 1024 * 1024
export const MAX_LABEL = 64
const LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface TapeHeader {
  /** Bytes after the header the tape holds; 0: unlimited. */
  capacity: number
  /** Writes that start within this many bytes of the capacity get EOM once (the early warning). */
  earlyWarning: number
  label: string
}

/** A tape file that is not a tape, or is damaged: names the file and the byte offset. */
export class TapeFormatError extends Error {
  readonly path: string
  readonly offset: number
  constructor(path: string, offset: number, message: string) {
    super(`${path}: at byte ${String(offset)}: ${message}`)
    this.name = 'TapeFormatError'
    this.path = path
    this.offset = offset
  }
}

export function checkLabel(label: string): void {
  if (!LABEL_RE.test(label)) throw new RangeError(`bad tape label ${JSON.stringify(label)}: 1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -`)
}

export function encodeHeader(h: TapeHeader): Buffer {
  if (h.label !== '') checkLabel(h.label)
  const b = Buffer.alloc(HEADER_SIZE)
  TAPE_MAGIC.copy(b, 0)
  b.writeUInt32BE(TAPE_VERSION, 8)
  b.writeUInt32BE(HEADER_SIZE, 12)
  b.writeBigUInt64BE(BigInt(h.capacity), 16)
  b.writeBigUInt64BE(BigInt(h.earlyWarning), 24)
  const label = Buffer.from(h.label, 'utf8')
  b.writeUInt32BE(label.length, 32)
  label.copy(b, 64)
  return b
}

export function decodeHeader(path: string, b: Buffer): TapeHeader {
  if (b.length < HEADER_SIZE) throw new TapeFormatError(path, b.length, `truncated tape header (${String(b.length)} of ${String(HEADER_SIZE)} bytes)`)
  if (!b.subarray(0, 8).equals(TAPE_MAGIC)) throw new TapeFormatError(path, 0, 'not a tsnfs tape file (bad magic)')
  const version = b.readUInt32BE(8)
  if (version !== TAPE_VERSION) throw new TapeFormatError(path, 8, `unknown tape format version ${String(version)}`)
  if (b.readUInt32BE(12) !== HEADER_SIZE) throw new TapeFormatError(path, 12, 'bad header size')
  const capacity = Number(b.readBigUInt64BE(16))
  const earlyWarning = Number(b.readBigUInt64BE(24))
  const labelLen = b.readUInt32BE(32)
  if (labelLen > MAX_LABEL) throw new TapeFormatError(path, 32, `label length ${String(labelLen)} over ${String(MAX_LABEL)}`)
  if (!Number.isSafeInteger(capacity) || !Number.isSafeInteger(earlyWarning) || (capacity > 0 && earlyWarning > capacity)) {
    throw new TapeFormatError(path, 16, 'bad capacity or early-warning size')
  }
  return { capacity, earlyWarning, label: b.subarray(64, 64 + labelLen).toString('utf8') }
}

export interface Frame {
  kind: typeof KIND_RECORD | typeof KIND_FILEMARK
  length: number
  crc: number
}

export function encodeFrame(kind: Frame['kind'], data: Buffer | null): Buffer {
  const b = Buffer.alloc(FRAME_SIZE)
  b.writeUInt32BE(FRAME_MAGIC, 0)
  b.writeUInt32BE(kind, 4)
  b.writeUInt32BE(data?.length ?? 0, 8)
  b.writeUInt32BE(data === null ? 0 : crc32(data), 12)
  return b
}

/** Decodes the frame header at `offset`; `room` is how many bytes the file has from there. */
export function decodeFrame(path: string, offset: number, b: Buffer, room: number): Frame {
  if (b.length < FRAME_SIZE) throw new TapeFormatError(path, offset, `truncated frame header (${String(b.length)} of ${String(FRAME_SIZE)} bytes)`)
  if (b.readUInt32BE(0) !== FRAME_MAGIC) throw new TapeFormatError(path, offset, 'bad frame magic (damaged tape)')
  const kind = b.readUInt32BE(4)
  const length = b.readUInt32BE(8)
  const crc = b.readUInt32BE(12)
  if (kind === KIND_FILEMARK) {
    if (length !== 0) throw new TapeFormatError(path, offset, 'filemark with a length')
    return { kind, length, crc }
  }
  if (kind !== KIND_RECORD) throw new TapeFormatError(path, offset, `unknown frame kind ${String(kind)}`)
  if (length === 0 || length > MAX_RECORD) throw new TapeFormatError(path, offset, `record length ${String(length)} out of range 1..${String(MAX_RECORD)}`)
  if (FRAME_SIZE + length > room) throw new TapeFormatError(path, offset, `truncated record (${String(room - FRAME_SIZE)} of ${String(length)} bytes)`)
  return { kind, length, crc }
}

export function recordCrc(data: Buffer): number {
  return crc32(data)
}
