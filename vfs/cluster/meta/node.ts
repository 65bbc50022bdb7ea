/*
 * tsnfs_node rows <-> Attr. The driver gives BIGINT columns as strings,
 * INTEGER/SMALLINT as numbers and BYTEA as Buffers (vfs/cluster/sql.ts).
 */
import { nowTimespec } from '../../clock.ts'
import { VfsError } from '../../errors.ts'
import type { Attr, FileRef, FileType, SetAttr, Timespec } from '../../types.ts'
import { checkSetAttr as checkSetAttrShared } from '../../set-attr-checks.ts'
import { TYPE_CODE } from '../schema.ts'

/** Every column of tsnfs_node a reply needs, in one list so each query selects the same. */
export const NODE_COLUMNS =
  'inode, gen, type, mode, uid, gid, nlink, size, rdev_major, rdev_minor, atime_sec, atime_nsec, ' +
  'mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, parent, ver, used'

/** NODE_COLUMNS of table alias `a`, renamed with prefix `p` (`a.inode AS p_inode`, ...). */
export function nodeColumnsAs(a: string, p: string): string {
  return NODE_COLUMNS.split(', ').map((c) => `${a}.${c} AS ${p}_${c}`).join(', ')
}

export type Row = Record<string, unknown>

/**
 * A node as this server holds it: its attributes, for a directory its parent, and the row's
 * version (tsnfs_node.ver, bumped by every metadata change; meta/cache.ts orders by it).
 */
export interface Node {
  attr: Attr
  parent: bigint
  ver: bigint
}

const TYPE_NAME = new Map<number, FileType>(
  (Object.entries(TYPE_CODE) as [FileType, number][]).map(([name, code]) => [code, name]),
)

export function typeCode(type: FileType): number {
  return TYPE_CODE[type]
}

function big(v: unknown): bigint {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return BigInt(v)
  throw new VfsError('EIO', `database returned ${typeof v} for an integer column`)
}

function num(v: unknown): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string') return Number(v)
  throw new VfsError('EIO', `database returned ${typeof v} for an integer column`)
}

/** The allocation unit `used` is rounded to (JuiceFS reports sizes rounded to 4 KiB too). */
export const USED_UNIT = 4096n

/**
 * GETATTR's `used` (RFC 1813 fattr3.used: bytes of disk the file takes).
 * A file or symlink: the bytes of stored slices its chunk records show
 * (tsnfs_node.used, so a hole takes nothing), at most its size rounded up to
 * 4 KiB: an overwrite adds its slice until compaction merges the chunk, and
 * the cap keeps that from reporting more than the file could take. The store
 * keeps objects of their exact length (no 4 MiB padding), so rounding to the
 * block would overstate small files. A directory: one unit; others nothing.
 */
export function usedOf(type: FileType, size: bigint, stored: bigint): bigint {
  if (type === 'dir') return USED_UNIT
  if (type !== 'file' && type !== 'symlink') return 0n
  const cap = ((size + USED_UNIT - 1n) / USED_UNIT) * USED_UNIT
  if (type === 'symlink') return cap // the target is in the row: it takes what its length does
  return stored < 0n ? 0n : stored < cap ? stored : cap
}

/** The node in `row`, whose columns carry prefix `p` (`p_inode`) or none. */
export function nodeOf(row: Row, p = ''): Node {
  const col = (c: string): unknown => row[p === '' ? c : `${p}_${c}`]
  const type = TYPE_NAME.get(num(col('type')))
  if (type === undefined) throw new VfsError('EIO', `unknown node type ${String(col('type'))}`)
  const ts = (n: string): Timespec => ({ sec: num(col(`${n}_sec`)), nsec: num(col(`${n}_nsec`)) })
  const attr: Attr = {
    type,
    mode: num(col('mode')),
    nlink: num(col('nlink')),
    uid: num(col('uid')),
    gid: num(col('gid')),
    size: big(col('size')),
    used: usedOf(type, big(col('size')), big(col('used') ?? 0)),
    rdev: { major: num(col('rdev_major')), minor: num(col('rdev_minor')) },
    fileid: big(col('inode')),
    gen: num(col('gen')),
    atime: ts('atime'),
    mtime: ts('mtime'),
    ctime: ts('ctime'),
  }
  return { attr, parent: big(col('parent')), ver: big(col('ver')) }
}

/** True when `row` has the prefixed node (a LEFT JOIN found one). */
export function hasNode(row: Row, p: string): boolean {
  const v = row[`${p}_inode`]
  return v !== null && v !== undefined
}

export function refOf(attr: Attr): FileRef {
  return { id: attr.fileid, gen: attr.gen }
}

/** The node `f` names: ESTALE when it is gone or its generation differs. */
export function checkRef(node: Node | undefined, f: FileRef): Node {
  // nlink 0: the last name went and the release has not yet deleted the row (meta/delfile.ts).
  if (node === undefined || node.attr.gen !== f.gen || node.attr.nlink <= 0) throw new VfsError('ESTALE')
  return node
}

export function checkDir(node: Node): Node {
  if (node.attr.type !== 'dir') throw new VfsError('ENOTDIR')
  return node
}

/** The server's clock with nanoseconds, never going back within a millisecond (vfs/clock.ts). */
export function now(): Timespec {
  return nowTimespec()
}

export { MAX_FILE_SIZE } from '../../set-attr-checks.ts'

/** RFC 1813 §3.3.2 checks before anything changes (the shared ones), and a mode that fits the column. */
export function checkSetAttr(type: FileType, set: SetAttr): void {
  checkSetAttrShared(type, set)
  if (set.mode !== undefined && (!Number.isInteger(set.mode) || set.mode < 0)) throw new VfsError('EINVAL', 'bad mode')
}
