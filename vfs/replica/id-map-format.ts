/*
 * The id map's file format (id-map-file.ts reads and writes the files,
 * id-map.ts holds the map in memory): `map.snap`, a snapshot
 * written whole and renamed into place, and `map.log`, the records since,
 * appended in batches. Modelled on vfs/local/handle-index.ts, with a
 * version and a CRC so that damage is told apart from a crash.
 *
 * Both files start with a 24-byte header: magic `TSNFSVM\0`, format version
 * (u32), generation (u64), CRC-32 of those 20 bytes (u32). A log belongs to
 * the snapshot of its generation; a log of an older generation is what a
 * crash during compaction left behind (the snapshot already holds it) and is
 * replaced. Each record: payload length (u32, at most MAX_PAYLOAD), CRC-32
 * of the payload (u32), payload (kind byte, then big-endian fields).
 *
 * Crash versus damage: a log record that runs past the end of the file, or a
 * bad record followed only by zero bytes (a file extended but not yet
 * written), is a torn tail from a crash and is cut off at load. A bad record
 * with anything else after it, a bad header, an unknown version or any bad
 * record in a snapshot is damage: VfsError EIO naming the file and offset.
 *
 * Versions: 2 added the `logged` record (a primary's checkpoint against its
 * change log, which carries the binds since: server/replication/map-recovery.ts).
 * Version 1 files are read (every record they can hold means the same) and
 * rewritten as version 2 at open (id-map.ts), so a build that reads only
 * version 1 refuses the map by its version instead of misreading it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { VfsError } from '../errors.ts'

export type MapRecord =
  | { kind: 'bind'; vid: bigint; vidGen: number; local: bigint; localGen: number }
  | { kind: 'unbind'; vid: bigint }
  /** epoch and vid counter (the next allocate() returns counter + 1), and the applied position. */
  | { kind: 'state'; epoch: number; counter: bigint; position: bigint }
  /** A standby applied this change (written through, not synced): how far a crashed standby had got. */
  | { kind: 'applied'; seq: bigint }
  /** A primary's checkpoint: the map holds the edits of its change log's records up to `seq`, in the log of `epoch`. */
  | { kind: 'logged'; epoch: number; seq: bigint }

export const MAP_VERSION = 2
/** The oldest version still read. */
export const MAP_VERSION_MIN = 1
const MAGIC = Buffer.from('TSNFSVM\0')
const HEADER = 24
const RECORD_HEAD = 8
/** Every payload is far smaller; a longer length is damage, refused before anything is allocated. */
export const MAX_PAYLOAD = 64
const KIND_BIND = 1
const KIND_UNBIND = 2
const KIND_STATE = 3
const KIND_APPLIED = 4
const KIND_LOGGED = 5
const BIND_LEN = 1 + 8 + 4 + 8 + 4
const UNBIND_LEN = 1 + 8
const STATE_LEN = 1 + 4 + 8 + 8
const APPLIED_LEN = 1 + 8
const LOGGED_LEN = 1 + 4 + 8

export const SNAP_FILE = 'map.snap'
export const LOG_FILE = 'map.log'

function corrupt(file: string, what: string): VfsError {
  return new VfsError('EIO', `id map ${file}: ${what}`)
}

export function header(generation: bigint): Buffer {
  const h = Buffer.alloc(HEADER)
  MAGIC.copy(h, 0)
  h.writeUInt32BE(MAP_VERSION, 8)
  h.writeBigUInt64BE(generation, 12)
  h.writeUInt32BE(crc32(h.subarray(0, 20)), 20)
  return h
}

export function encodeRecord(r: MapRecord): Buffer {
  const len = r.kind === 'bind' ? BIND_LEN : r.kind === 'unbind' ? UNBIND_LEN : r.kind === 'applied' ? APPLIED_LEN : r.kind === 'logged' ? LOGGED_LEN : STATE_LEN
  const b = Buffer.alloc(RECORD_HEAD + len)
  const p = b.subarray(RECORD_HEAD)
  if (r.kind === 'bind') {
    p[0] = KIND_BIND
    p.writeBigUInt64BE(r.vid, 1)
    p.writeUInt32BE(r.vidGen, 9)
    p.writeBigUInt64BE(r.local, 13)
    p.writeUInt32BE(r.localGen, 21)
  } else if (r.kind === 'unbind') {
    p[0] = KIND_UNBIND
    p.writeBigUInt64BE(r.vid, 1)
  } else if (r.kind === 'applied') {
    p[0] = KIND_APPLIED
    p.writeBigUInt64BE(r.seq, 1)
  } else if (r.kind === 'logged') {
    p[0] = KIND_LOGGED
    p.writeUInt32BE(r.epoch, 1)
    p.writeBigUInt64BE(r.seq, 5)
  } else {
    p[0] = KIND_STATE
    p.writeUInt32BE(r.epoch, 1)
    p.writeBigUInt64BE(r.counter, 5)
    p.writeBigUInt64BE(r.position, 13)
  }
  b.writeUInt32BE(len, 0)
  b.writeUInt32BE(crc32(p), 4)
  return b
}

function decodePayload(p: Buffer, version: number): MapRecord | null {
  const kind = p[0]
  if (kind === KIND_LOGGED && p.length === LOGGED_LEN && version >= 2) return { kind: 'logged', epoch: p.readUInt32BE(1), seq: p.readBigUInt64BE(5) }
  if (kind === KIND_BIND && p.length === BIND_LEN) {
    return { kind: 'bind', vid: p.readBigUInt64BE(1), vidGen: p.readUInt32BE(9), local: p.readBigUInt64BE(13), localGen: p.readUInt32BE(21) }
  }
  if (kind === KIND_UNBIND && p.length === UNBIND_LEN) return { kind: 'unbind', vid: p.readBigUInt64BE(1) }
  if (kind === KIND_APPLIED && p.length === APPLIED_LEN) return { kind: 'applied', seq: p.readBigUInt64BE(1) }
  if (kind === KIND_STATE && p.length === STATE_LEN) {
    return { kind: 'state', epoch: p.readUInt32BE(1), counter: p.readBigUInt64BE(5), position: p.readBigUInt64BE(13) }
  }
  return null
}

export interface Parsed {
  version: number
  generation: bigint
  records: MapRecord[]
  /** Bytes up to the end of the last good record (the log is cut there). */
  validLength: number
}

function allZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false
  return true
}

/** Parses one file; `strict` (a snapshot) allows no torn tail. */
export function parse(buf: Buffer, file: string, strict: boolean): Parsed {
  if (buf.length < HEADER) throw corrupt(file, `${buf.length} bytes, shorter than the header`)
  if (!buf.subarray(0, 8).equals(MAGIC)) throw corrupt(file, 'not an id map (bad magic)')
  if (buf.readUInt32BE(20) !== crc32(buf.subarray(0, 20))) throw corrupt(file, 'header CRC mismatch')
  const version = buf.readUInt32BE(8)
  if (version < MAP_VERSION_MIN || version > MAP_VERSION) throw corrupt(file, `format version ${version}, this build reads ${MAP_VERSION_MIN} to ${MAP_VERSION}`)
  const out: Parsed = { version, generation: buf.readBigUInt64BE(12), records: [], validLength: HEADER }
  let off = HEADER
  while (off < buf.length) {
    const bad = (what: string): Parsed => {
      if (!strict && allZero(buf.subarray(off))) return out
      throw corrupt(file, `${what} at offset ${off}`)
    }
    if (off + RECORD_HEAD > buf.length) return strict ? bad('truncated record') : out
    const len = buf.readUInt32BE(off)
    if (len === 0 || len > MAX_PAYLOAD) return bad(`record length ${len}`)
    const end = off + RECORD_HEAD + len
    if (end > buf.length) return strict ? bad('truncated record') : out
    const payload = buf.subarray(off + RECORD_HEAD, end)
    if (buf.readUInt32BE(off + 4) !== crc32(payload)) {
      // The last record of the log, torn mid-write.
      if (!strict && end === buf.length) return out
      return bad('record CRC mismatch')
    }
    const rec = decodePayload(payload, version)
    if (rec === null) return bad(`unknown record kind ${payload[0] ?? 0}`)
    out.records.push(rec)
    off = end
    out.validLength = off
  }
  return out
}

export function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null
    throw new VfsError('EIO', `id map ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/** Writes `data` to `file` via a synced temporary and a rename, then syncs the directory. */
export async function replaceDurably(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.tmp`
  const fh = await fs.promises.open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await fs.promises.rename(tmp, file)
  const dir = await fs.promises.open(path.dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}
