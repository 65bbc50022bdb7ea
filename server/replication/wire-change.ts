/*
 * Change (vfs/replica/change.ts) <-> the generated repl_change, for the
 * standby and the sender until change-codec.ts (the "changelog" helper's,
 * issue 15) lands: it exports the same changeToRepl and changeFromRepl, so
 * then this file goes and its importers change their import path.
 *
 * Buffers in both directions are views (no copies), as in change-codec.ts.
 */
import type { Change, ChangeBody, ChangeTimes, NewObject, ResolvedSetAttr } from '../../vfs/replica/change.ts'
import { MAX_CHANGE_TIMES } from '../../vfs/replica/change.ts'
import type { FileRef, Timespec } from '../../vfs/types.ts'
import type { repl_body, repl_change, repl_new, repl_ref, repl_time } from '../../xdr/generated/replication.ts'
import { REPL_MAXDATA, repl_ftype, repl_op } from '../../xdr/generated/replication.ts'

/** A change the wire can carry but the standby must refuse (REPL_BAD_CHANGE). */
export class BadChangeError extends Error {
  readonly code = 'REPL_BAD_CHANGE'
  constructor(message: string) {
    super(message)
    this.name = 'BadChangeError'
  }
}

const FTYPES = { block: repl_ftype.REPL_BLK, char: repl_ftype.REPL_CHR, socket: repl_ftype.REPL_SOCK, fifo: repl_ftype.REPL_FIFO } as const
const FTYPE_NAMES = { 1: 'block', 2: 'char', 3: 'socket', 4: 'fifo' } as const

const refOut = (r: FileRef): repl_ref => ({ id: r.id, gen: r.gen })
const refIn = (r: repl_ref): FileRef => ({ id: r.id, gen: r.gen })
const timeOut = (t: Timespec): repl_time => ({ sec: BigInt(t.sec), nsec: t.nsec })

function timeIn(t: repl_time): Timespec {
  // Timespec.sec is a number: ±2^53 s is far past any file time; larger is a forged change.
  if (t.sec > BigInt(Number.MAX_SAFE_INTEGER) || t.sec < -BigInt(Number.MAX_SAFE_INTEGER)) throw new BadChangeError(`time ${t.sec} s out of range`)
  if (t.nsec >= 1_000_000_000) throw new BadChangeError(`nsec ${t.nsec} out of range`)
  return { sec: Number(t.sec), nsec: t.nsec }
}

const newOut = (o: NewObject): repl_new => ({ dir: refOut(o.dir), name: o.name, ref: refOut(o.ref), mode: o.mode, uid: o.uid, gid: o.gid })
const newIn = (o: repl_new): NewObject => ({ dir: refIn(o.dir), name: o.name, ref: refIn(o.ref), mode: o.mode, uid: o.uid, gid: o.gid })

function bodyOut(c: ChangeBody): repl_body {
  switch (c.op) {
    case 'create':
      return { op: repl_op.REPL_OP_CREATE, create: { obj: newOut(c.obj), how: c.exclusive } }
    case 'mkdir':
      return { op: repl_op.REPL_OP_MKDIR, mkdir: newOut(c.obj) }
    case 'symlink':
      return { op: repl_op.REPL_OP_SYMLINK, symlink: { obj: newOut(c.obj), target: c.target } }
    case 'mknod':
      return { op: repl_op.REPL_OP_MKNOD, mknod: { obj: newOut(c.obj), type: FTYPES[c.type], major: c.rdev.major, minor: c.rdev.minor } }
    case 'write':
      return { op: repl_op.REPL_OP_WRITE, write: { ref: refOut(c.ref), offset: c.offset, length: c.length, data: c.data ?? Buffer.alloc(0) } }
    case 'setattr': {
      const s = c.set
      return {
        op: repl_op.REPL_OP_SETATTR,
        setattr: {
          ref: refOut(c.ref),
          set: {
            mode: s.mode ?? null,
            uid: s.uid ?? null,
            gid: s.gid ?? null,
            size: s.size ?? null,
            atime: s.atime === undefined ? null : timeOut(s.atime),
            mtime: s.mtime === undefined ? null : timeOut(s.mtime),
          },
        },
      }
    }
    case 'remove':
      return { op: repl_op.REPL_OP_REMOVE, remove: { dir: refOut(c.dir), name: c.name } }
    case 'rmdir':
      return { op: repl_op.REPL_OP_RMDIR, rmdir: { dir: refOut(c.dir), name: c.name } }
    case 'rename':
      return { op: repl_op.REPL_OP_RENAME, rename: { from_dir: refOut(c.fromDir), from_name: c.fromName, to_dir: refOut(c.toDir), to_name: c.toName } }
    case 'link':
      return { op: repl_op.REPL_OP_LINK, link: { ref: refOut(c.ref), dir: refOut(c.dir), name: c.name } }
  }
}

/** The wire form of a change (buffers by reference). */
export function changeToRepl(c: Change): repl_change {
  return {
    body: bodyOut(c),
    times: c.times.map((t) => ({ ref: refOut(t.ref), atime: timeOut(t.atime), mtime: timeOut(t.mtime) })),
  }
}

function bodyIn(b: repl_body): ChangeBody {
  switch (b.op) {
    case 1:
      return { op: 'create', obj: newIn(b.create.obj), exclusive: b.create.how }
    case 2:
      return { op: 'mkdir', obj: newIn(b.mkdir) }
    case 3:
      return { op: 'symlink', obj: newIn(b.symlink.obj), target: b.symlink.target }
    case 4:
      return { op: 'mknod', obj: newIn(b.mknod.obj), type: FTYPE_NAMES[b.mknod.type], rdev: { major: b.mknod.major, minor: b.mknod.minor } }
    case 5: {
      const w = b.write
      // On the wire a WRITE carries exactly its bytes (the log's data-less form is not shipped).
      if (w.length > REPL_MAXDATA || w.data.length !== w.length) throw new BadChangeError(`write of ${w.length} bytes carries ${w.data.length}`)
      return { op: 'write', ref: refIn(w.ref), offset: w.offset, length: w.length, data: w.data }
    }
    case 6: {
      const s = b.setattr.set
      const set: ResolvedSetAttr = {
        ...(s.mode === null ? {} : { mode: s.mode }),
        ...(s.uid === null ? {} : { uid: s.uid }),
        ...(s.gid === null ? {} : { gid: s.gid }),
        ...(s.size === null ? {} : { size: s.size }),
        ...(s.atime === null ? {} : { atime: timeIn(s.atime) }),
        ...(s.mtime === null ? {} : { mtime: timeIn(s.mtime) }),
      }
      return { op: 'setattr', ref: refIn(b.setattr.ref), set }
    }
    case 7:
      return { op: 'remove', dir: refIn(b.remove.dir), name: b.remove.name }
    case 8:
      return { op: 'rmdir', dir: refIn(b.rmdir.dir), name: b.rmdir.name }
    case 9: {
      const r = b.rename
      return { op: 'rename', fromDir: refIn(r.from_dir), fromName: r.from_name, toDir: refIn(r.to_dir), toName: r.to_name }
    }
    case 10:
      return { op: 'link', ref: refIn(b.link.ref), dir: refIn(b.link.dir), name: b.link.name }
  }
}

/** A decoded wire change as a Change (buffers are views); BadChangeError when it breaks a rule the .x cannot state. */
export function changeFromRepl(c: repl_change): Change {
  if (c.times.length > MAX_CHANGE_TIMES) throw new BadChangeError(`${c.times.length} times, at most ${MAX_CHANGE_TIMES}`)
  const times: ChangeTimes[] = c.times.map((t) => ({ ref: refIn(t.ref), atime: timeIn(t.atime), mtime: timeIn(t.mtime) }))
  return { ...bodyIn(c.body), times }
}
