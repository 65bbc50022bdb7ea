/*
 * The full resync's wire values (xdr/spec/replication.x repl_rs_*) <->
 * resync-target.ts's, with the rules XDR cannot say checked as for changes
 * (change-codec.ts): names are single path components, modes permission
 * bits, times real timespecs. Decoding breaks no rule silently: it throws
 * ReplicationError('REPL_BAD_CHANGE') and the call is refused whole.
 */
import type { Attr, FileType } from '../../vfs/types.ts'
import type { repl_rs_attr, repl_rs_dir_args, repl_rs_entry, repl_rs_type } from '../../xdr/generated/replication.ts'
import { checkMode, checkName, failDecode, failEncode, timeFromRepl, timeToRepl } from './change-codec.ts'
import type { ResyncAttr, ResyncDirPart, ResyncEntry } from './resync-target.ts'

const TYPE: Record<FileType, repl_rs_type> = { file: 1, dir: 2, symlink: 3, block: 4, char: 5, socket: 6, fifo: 7 }
const TYPE_NAME: readonly (FileType | '')[] = ['', 'file', 'dir', 'symlink', 'block', 'char', 'socket', 'fifo']

const EMPTY = Buffer.alloc(0)

/** An object's attributes as RESYNC_DIR sends them (`target`: a symlink's). */
export function rsAttrToWire(a: Attr, target: Buffer | null): repl_rs_attr {
  return {
    type: TYPE[a.type],
    mode: checkMode(a.mode, failEncode),
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    atime: timeToRepl(a.atime, failEncode),
    mtime: timeToRepl(a.mtime, failEncode),
    major: a.rdev.major,
    minor: a.rdev.minor,
    target: target ?? EMPTY,
  }
}

export function rsAttrFromWire(a: repl_rs_attr): ResyncAttr {
  const type = TYPE_NAME[a.type]
  if (type === undefined || type === '') return failDecode(`object type ${String(a.type)}`)
  if (type === 'symlink' && a.target.length === 0) failDecode('a symlink without a target')
  return {
    type,
    mode: checkMode(a.mode, failDecode),
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    atime: timeFromRepl(a.atime),
    mtime: timeFromRepl(a.mtime),
    rdev: { major: a.major, minor: a.minor },
    // Our own copy: the decoder's buffers are views of the record.
    target: Buffer.from(a.target),
  }
}

export function rsEntryToWire(name: Buffer, ref: { id: bigint; gen: number }, a: Attr, target: Buffer | null, verify: boolean): repl_rs_entry {
  return { name: checkName(name, failEncode), ref, attr: rsAttrToWire(a, target), verify }
}

export function rsDirFromWire(a: repl_rs_dir_args): ResyncDirPart {
  if (a.cookie_from >= a.cookie_to) failDecode(`cookie range (${String(a.cookie_from)}, ${String(a.cookie_to)}] is empty`)
  const dirAttr = rsAttrFromWire(a.dir_attr)
  if (dirAttr.type !== 'dir') failDecode('RESYNC_DIR of an object that is not a directory')
  const seen = new Set<string>()
  const entries: ResyncEntry[] = a.entries.map((e) => {
    const name = Buffer.from(checkName(e.name, failDecode))
    const key = name.toString('latin1')
    if (seen.has(key)) failDecode(`name ${key} listed twice`)
    seen.add(key)
    return { name, ref: e.ref, attr: rsAttrFromWire(e.attr), verify: e.verify }
  })
  return { dir: a.dir, dirAttr, cookieFrom: a.cookie_from, cookieTo: a.cookie_to, entries }
}
