/*
 * A Change (vfs/replica/change.ts) <-> the generated repl_change
 * (xdr/spec/replication.x), for the change log and the APPEND call. The
 * bytes are exactly repl_change's XDR, so a logged change can be shipped as
 * it is stored.
 *
 * Both directions check what XDR cannot say: a write's data is empty (the
 * log's form) or exactly `length` bytes, times are real timespecs, names are
 * single path components, modes are permission bits. Encoding a change that
 * breaks a rule throws XdrEncodeError (a bug in the caller, found before it
 * reaches the log); decoding one throws ReplicationError('REPL_BAD_CHANGE').
 * XDR's own caps (names <= 255 bytes, paths <= 4096, data <= 1 MiB, at most
 * four times) fail first, as XdrDecodeError('XDR_TOO_LONG'), before anything
 * is allocated.
 *
 * Decoded buffers (names, targets, verifiers, data) are views into the input
 * (XdrReader is zero copy): a caller that keeps a change beyond the input's
 * life copies them.
 */
import type { Change, ChangeBody, ChangeTimes, NewObject, ResolvedSetAttr } from '../../vfs/replica/change.ts'
import { MAX_CHANGE_TIMES } from '../../vfs/replica/change.ts'
import type { Timespec } from '../../vfs/types.ts'
import { MAX_FILE_SIZE } from '../../vfs/set-attr-checks.ts'
import { REPL_MAXDATA, repl_change } from '../../xdr/generated/replication.ts'
import type { repl_body, repl_ftype, repl_new, repl_sattr, repl_time, repl_times } from '../../xdr/generated/replication.ts'
import { XdrEncodeError } from '../../xdr/runtime/errors.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { ReplicationError } from './log-types.ts'

export type Fail = (message: string) => never

export const failEncode: Fail = (message) => {
  throw new XdrEncodeError(`repl_change: ${message}`)
}
export const failDecode: Fail = (message) => {
  throw new ReplicationError('REPL_BAD_CHANGE', `repl_change: ${message}`)
}

const NSEC_PER_SEC = 1_000_000_000
/** Attr.mode holds the permission bits only (vfs/types.ts). */
const MAX_MODE = 0o7777
const SLASH = 0x2f

const FTYPE: Record<'block' | 'char' | 'socket' | 'fifo', repl_ftype> = { block: 1, char: 2, socket: 3, fifo: 4 }
const FTYPE_NAME = ['', 'block', 'char', 'socket', 'fifo'] as const

export function encodeChange(w: XdrWriter, change: Change): void {
  repl_change.encode(w, changeToRepl(change))
}

/** One change; throws XdrDecodeError on malformed XDR and ReplicationError('REPL_BAD_CHANGE') on an invalid change. */
export function decodeChange(r: XdrReader): Change {
  return changeFromRepl(repl_change.decode(r))
}

/** The change's XDR bytes (a fresh buffer the caller owns). */
export function changeBytes(change: Change): Buffer {
  const w = new XdrWriter(256)
  encodeChange(w, change)
  return w.toBuffer()
}

/** Exactly one change filling `buf` (trailing bytes: XDR_TRAILING_BYTES). Buffers in the result are views into `buf`. */
export function changeFromBytes(buf: Buffer): Change {
  const r = new XdrReader(buf)
  const change = decodeChange(r)
  r.done()
  return change
}

export function changeToRepl(c: Change): repl_change {
  if (c.times.length > MAX_CHANGE_TIMES) failEncode(`${String(c.times.length)} times, at most ${String(MAX_CHANGE_TIMES)}`)
  return { body: bodyToRepl(c, failEncode), times: c.times.map((t) => timesToRepl(t, failEncode)) }
}

export function changeFromRepl(v: repl_change): Change {
  // The XDR decoder already capped times at 4; the Change type's own cap is the one that counts.
  if (v.times.length > MAX_CHANGE_TIMES) failDecode(`${String(v.times.length)} times, at most ${String(MAX_CHANGE_TIMES)}`)
  const times = v.times.map(timesFromRepl)
  return { ...bodyFromRepl(v.body), times }
}

function bodyToRepl(c: Change, fail: Fail): repl_body {
  switch (c.op) {
    case 'create':
      return { op: 1, create: { obj: newToRepl(c.obj, fail), how: c.exclusive } }
    case 'mkdir':
      return { op: 2, mkdir: newToRepl(c.obj, fail) }
    case 'symlink':
      return { op: 3, symlink: { obj: newToRepl(c.obj, fail), target: c.target } }
    case 'mknod':
      return { op: 4, mknod: { obj: newToRepl(c.obj, fail), type: FTYPE[c.type], major: c.rdev.major, minor: c.rdev.minor } }
    case 'write':
      checkWrite(c.offset, c.length, c.data?.length ?? 0, fail)
      return { op: 5, write: { ref: c.ref, offset: c.offset, length: c.length, data: c.data ?? EMPTY } }
    case 'setattr':
      return { op: 6, setattr: { ref: c.ref, set: sattrToRepl(c.set, fail) } }
    case 'remove':
      return { op: 7, remove: { dir: c.dir, name: checkName(c.name, fail) } }
    case 'rmdir':
      return { op: 8, rmdir: { dir: c.dir, name: checkName(c.name, fail) } }
    case 'rename':
      return {
        op: 9,
        rename: { from_dir: c.fromDir, from_name: checkName(c.fromName, fail), to_dir: c.toDir, to_name: checkName(c.toName, fail) },
      }
    case 'link':
      return { op: 10, link: { ref: c.ref, dir: c.dir, name: checkName(c.name, fail) } }
    default:
      return assertNever(c)
  }
}

const EMPTY = Buffer.alloc(0)

function bodyFromRepl(b: repl_body): ChangeBody {
  const fail = failDecode
  switch (b.op) {
    case 1:
      return { op: 'create', obj: newFromRepl(b.create.obj), exclusive: b.create.how }
    case 2:
      return { op: 'mkdir', obj: newFromRepl(b.mkdir) }
    case 3:
      return { op: 'symlink', obj: newFromRepl(b.symlink.obj), target: b.symlink.target }
    case 4: {
      const { obj, type, major, minor } = b.mknod
      return { op: 'mknod', obj: newFromRepl(obj), type: FTYPE_NAME[type], rdev: { major, minor } }
    }
    case 5: {
      const { ref, offset, length, data } = b.write
      checkWrite(offset, length, data.length, fail)
      // An empty opaque is the log's form: the sender fills the range when it ships the change.
      return { op: 'write', ref, offset, length, data: data.length === 0 ? null : data }
    }
    case 6:
      return { op: 'setattr', ref: b.setattr.ref, set: sattrFromRepl(b.setattr.set) }
    case 7:
      return { op: 'remove', dir: b.remove.dir, name: checkName(b.remove.name, fail) }
    case 8:
      return { op: 'rmdir', dir: b.rmdir.dir, name: checkName(b.rmdir.name, fail) }
    case 9: {
      const r = b.rename
      return { op: 'rename', fromDir: r.from_dir, fromName: checkName(r.from_name, fail), toDir: r.to_dir, toName: checkName(r.to_name, fail) }
    }
    case 10:
      return { op: 'link', ref: b.link.ref, dir: b.link.dir, name: checkName(b.link.name, fail) }
    default:
      return assertNever(b)
  }
}

function checkWrite(offset: bigint, length: number, dataLength: number, fail: Fail): void {
  // A logged WRITE is metadata-sized, but its length still names one WRITE's range (at most the server's wtmax).
  if (length > REPL_MAXDATA) fail(`write length ${String(length)} over ${String(REPL_MAXDATA)}`)
  // No backend holds a byte past a signed 64-bit off_t: a write there could never apply, and a standby
  // answering its EFBIG as a backend failure (REPL_IO) had the primary retry it for ever.
  if (offset + BigInt(length) > MAX_FILE_SIZE) fail(`write of ${String(length)} bytes at ${String(offset)} ends past the largest file size`)
  if (dataLength !== 0 && dataLength !== length) fail(`write of length ${String(length)} carries ${String(dataLength)} bytes of data`)
}

/** One path component, as every Vfs call that takes a name expects (no `/`, no NUL, not `.` or `..`). */
export function checkName(name: Buffer, fail: Fail): Buffer {
  if (name.length === 0) fail('empty name')
  if (name.includes(SLASH) || name.includes(0)) fail(`name ${JSON.stringify(name.toString('latin1'))} is not one path component`)
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) fail(`name ${name.toString('latin1')}`)
  return name
}

export function checkMode(mode: number, fail: Fail): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > MAX_MODE) fail(`mode 0o${mode.toString(8)} is more than permission bits`)
  return mode
}

function newToRepl(o: NewObject, fail: Fail): repl_new {
  return { dir: o.dir, name: checkName(o.name, fail), ref: o.ref, mode: checkMode(o.mode, fail), uid: o.uid, gid: o.gid }
}

function newFromRepl(o: repl_new): NewObject {
  return { dir: o.dir, name: checkName(o.name, failDecode), ref: o.ref, mode: checkMode(o.mode, failDecode), uid: o.uid, gid: o.gid }
}

export function timeToRepl(t: Timespec, fail: Fail): repl_time {
  if (!Number.isSafeInteger(t.sec)) fail(`time ${String(t.sec)} s is not a safe integer`)
  if (!Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= NSEC_PER_SEC) fail(`time ${String(t.nsec)} ns out of [0, 1e9)`)
  return { sec: BigInt(t.sec), nsec: t.nsec }
}

export function timeFromRepl(t: repl_time): Timespec {
  // Timespec.sec is a number: a hyper beyond 2^53 cannot be one without rounding.
  if (t.sec > BigInt(Number.MAX_SAFE_INTEGER) || t.sec < BigInt(Number.MIN_SAFE_INTEGER)) failDecode(`time ${String(t.sec)} s is not a safe integer`)
  if (t.nsec >= NSEC_PER_SEC) failDecode(`time ${String(t.nsec)} ns out of [0, 1e9)`)
  return { sec: Number(t.sec), nsec: t.nsec }
}

function timesToRepl(t: ChangeTimes, fail: Fail): repl_times {
  return { ref: t.ref, atime: timeToRepl(t.atime, fail), mtime: timeToRepl(t.mtime, fail) }
}

function timesFromRepl(t: repl_times): ChangeTimes {
  return { ref: t.ref, atime: timeFromRepl(t.atime), mtime: timeFromRepl(t.mtime) }
}

function checkSize(size: bigint, fail: Fail): bigint {
  if (size > MAX_FILE_SIZE) fail(`size ${String(size)} past the largest file size`)
  return size
}

function sattrToRepl(s: ResolvedSetAttr, fail: Fail): repl_sattr {
  return {
    mode: s.mode === undefined ? null : checkMode(s.mode, fail),
    uid: s.uid ?? null,
    gid: s.gid ?? null,
    size: s.size === undefined ? null : checkSize(s.size, fail),
    atime: s.atime === undefined ? null : timeToRepl(s.atime, fail),
    mtime: s.mtime === undefined ? null : timeToRepl(s.mtime, fail),
  }
}

function sattrFromRepl(s: repl_sattr): ResolvedSetAttr {
  // exactOptionalPropertyTypes: an unset field is absent, never `undefined`.
  const out: ResolvedSetAttr = {}
  if (s.mode !== null) out.mode = checkMode(s.mode, failDecode)
  if (s.uid !== null) out.uid = s.uid
  if (s.gid !== null) out.gid = s.gid
  if (s.size !== null) out.size = checkSize(s.size, failDecode)
  if (s.atime !== null) out.atime = timeFromRepl(s.atime)
  if (s.mtime !== null) out.mtime = timeFromRepl(s.mtime)
  return out
}

function assertNever(x: never): never {
  throw new Error(`unexpected change ${String((x as { op?: unknown }).op)}`)
}
