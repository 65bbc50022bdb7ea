/*
 * Segment files of the change log (log-format.ts): scanning one at open
 * (recovery), reading records back, and the small fs helpers the log uses.
 *
 * Recovery rule: a process killed mid-append (SIGKILL) leaves the last
 * segment ending inside a record, never a damaged record followed by good
 * ones (a write is appended in order), so the last segment's tail is cut
 * at its first short or invalid record as long as no valid record (one
 * whose CRC checks and whose seq is not below the expected one) starts
 * anywhere after it. A damaged record with valid records after it, or any damage in an
 * earlier (sealed, fsynced) segment, loses changes that were durable: that
 * is REPL_LOG_CORRUPT, naming the file and offset, never a silent cut.
 */
import fs from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { checkHeader, corrupt, encodeHeader, HEADER_BYTES, parseRecord, RECORD_HEADER_BYTES } from './log-format.ts'

export const open = promisify(fs.open)
export const close = promisify(fs.close)
export const fdatasync = promisify(fs.fdatasync)
export const fsync = promisify(fs.fsync)
export const ftruncate = promisify(fs.ftruncate)
const fstat = promisify(fs.fstat)
const read = promisify(fs.read)
const write = promisify(fs.write)

/** A sparse index point: every INDEX_EVERY-th record's offset, so a read skips to near its first seq. */
export interface IndexPoint {
  seq: bigint
  offset: number
}
export const INDEX_EVERY = 256

export interface Segment {
  readonly path: string
  readonly firstSeq: bigint
  /** firstSeq - 1 while it holds no record. */
  lastSeq: bigint
  /** Bytes written, header included: records are read only below it. */
  size: number
  index: IndexPoint[]
}

/** A file read in one piece may not hold more than this (the forward search of a damaged tail). */
const MAX_WHOLE_READ = 256 * 1024 * 1024
const CHUNK = 1024 * 1024
const MIN_CHUNK = 64 * 1024

/** Writes all of `data` at `position` (a regular file may take a write in parts). */
export async function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await write(fd, data, done, data.length - done, position + done)
    done += bytesWritten
  }
}

/** Up to `length` bytes at `position`; fewer only at end of file. */
async function readAt(fd: number, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await read(fd, buf, done, length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return buf.subarray(0, done)
}

/** A new file's name is durable only once its directory is fsynced. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r')
  try {
    await fsync(fd)
  } finally {
    await close(fd)
  }
}

export interface ReadEnd {
  /** Where reading stopped: after the last record visited, or at the record that stopped it. */
  offset: number
  /** The seq expected at `offset`. */
  next: bigint
  stop: 'end' | 'visitor' | 'short' | 'bad'
  why?: string
}

/**
 * Reads the records in `[pos, end)` of `fd`, the first numbered `expect`
 * and each next one more. `visit` gets each record's frame (a view into a
 * fresh buffer) and returns false to stop after it.
 */
export async function readRecords(
  fd: number,
  pos: number,
  end: number,
  expect: bigint,
  visit: (seq: bigint, frame: Buffer, offset: number) => boolean,
  chunk = CHUNK,
): Promise<ReadEnd> {
  let buf: Buffer = Buffer.alloc(0)
  let bufStart = pos
  let off = pos
  while (off < end) {
    const rel = off - bufStart
    const p = parseRecord(buf, rel, buf.length)
    if (p.kind === 'short') {
      if (buf.length - rel >= end - off) return { offset: off, next: expect, stop: 'short', why: 'torn record' }
      // p.need is at most a header plus MAX_CHANGE_BYTES: parseRecord checked the length first.
      buf = await readAt(fd, Math.min(end - off, Math.max(chunk, p.need)), off)
      bufStart = off
      if (buf.length === 0) return { offset: off, next: expect, stop: 'short', why: 'file ends' }
      continue
    }
    if (p.kind === 'bad') return { offset: off, next: expect, stop: 'bad', why: p.why }
    if (p.seq !== expect) return { offset: off, next: expect, stop: 'bad', why: `record seq ${String(p.seq)}, ${String(expect)} expected,` }
    const more = visit(p.seq, buf.subarray(rel, p.next), off)
    off += p.next - rel
    expect++
    if (!more) return { offset: off, next: expect, stop: 'visitor' }
  }
  return { offset: off, next: expect, stop: 'end' }
}

/**
 * Whether a valid record numbered at least `minSeq` starts anywhere in `(from, end)`: durable
 * changes after damage. A tail too large to search (a last segment far over the default size)
 * counts as having one: refusing to open is safe, cutting durable changes is not.
 */
async function validRecordAfter(fd: number, from: number, end: number, minSeq: bigint): Promise<boolean> {
  if (end - from > MAX_WHOLE_READ) return true
  const buf = await readAt(fd, end - from, from)
  for (let o = 1; o + RECORD_HEADER_BYTES <= buf.length; o++) {
    const p = parseRecord(buf, o, buf.length)
    if (p.kind === 'record' && p.seq >= minSeq) return true
  }
  return false
}

export interface Scanned {
  segment: Segment
  /** The open fd of the last segment (read-write), for appending; null for earlier ones. */
  fd: number | null
  /** Bytes cut from a torn tail (0 when none). */
  cut: number
}

/**
 * Opens and checks one segment at log open. The last one may end torn
 * (cut, and the cut fsynced, or a torn header rewritten); damage anywhere
 * else throws REPL_LOG_CORRUPT, another format version REPL_LOG_VERSION.
 */
export async function scanSegment(dir: string, name: string, nameSeq: bigint, exportId: number, isLast: boolean): Promise<Scanned> {
  const path = join(dir, name)
  const fd = await open(path, isLast ? 'r+' : 'r')
  let keep = false
  try {
    const size = (await fstat(fd)).size
    const segment: Segment = { path, firstSeq: nameSeq, lastSeq: nameSeq - 1n, size: HEADER_BYTES, index: [] }
    if (size < HEADER_BYTES) {
      if (!isLast) throw corrupt(path, size, 'file ends inside the header')
      // Killed while creating the segment: its name is its first seq, so the header can be written again.
      await ftruncate(fd, 0)
      await writeAll(fd, encodeHeader(exportId, nameSeq), 0)
      await fdatasync(fd)
      keep = true
      return { segment, fd, cut: size }
    }
    checkHeader(await readAt(fd, HEADER_BYTES, 0), path, exportId, nameSeq)
    let count = 0
    const end = await readRecords(fd, HEADER_BYTES, size, nameSeq, (seq, _frame, offset) => {
      if (count++ % INDEX_EVERY === 0) segment.index.push({ seq, offset })
      return true
    })
    segment.lastSeq = end.next - 1n
    segment.size = end.offset
    if (end.stop !== 'end') {
      const why = end.why ?? end.stop
      // A flipped length can make a good record look torn: the search for a valid record after it tells damage from a tear.
      if (!isLast || (await validRecordAfter(fd, end.offset, size, end.next))) throw corrupt(path, end.offset, why)
      await ftruncate(fd, end.offset)
      await fdatasync(fd)
    }
    keep = isLast
    return { segment, fd: isLast ? fd : null, cut: size - end.offset }
  } finally {
    // The last segment's fd stays open for appending; on an error every fd closes.
    if (!keep) await close(fd)
  }
}

/** The records of `seg` from seq `from` on, until `visit` says stop; damage found now is REPL_LOG_CORRUPT. */
export async function readSegment(seg: Segment, from: bigint, maxBytes: number, visit: (seq: bigint, frame: Buffer) => boolean): Promise<void> {
  let point: IndexPoint = { seq: seg.firstSeq, offset: HEADER_BYTES }
  for (const p of seg.index) {
    if (p.seq > from) break
    point = p
  }
  const fd = await open(seg.path, 'r')
  try {
    // Read about what the caller wants (plus what the index makes us skip), not a whole chunk for one change.
    const chunk = Math.min(CHUNK, Math.max(MIN_CHUNK, maxBytes + INDEX_EVERY * 128))
    const end = await readRecords(fd, point.offset, seg.size, point.seq, (seq, frame) => seq < from || visit(seq, frame), chunk)
    if (end.stop === 'short' || end.stop === 'bad') throw corrupt(seg.path, end.offset, end.why ?? end.stop)
  } finally {
    await close(fd)
  }
}
