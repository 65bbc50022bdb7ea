/*
 * REMOVE and RMDIR (RFC 1813 §3.3.12, §3.3.13) in one transaction: the
 * entry goes, the child loses a link (and goes itself at none), the
 * directory's times change, and the change is announced.
 */
import { VfsError } from '../../errors.ts'
import { announce } from '../change.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import type { DirChange, FileRef, Timespec } from '../../types.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { childOf, fetchEntry } from './lookup.ts'
import { NODE_COLUMNS, nodeColumnsAs, nodeOf, now } from './node.ts'
import { payloadSql } from './notify-sql.ts'
import type { Node } from './node.ts'
import { dropEdge, hasEntries, touchDir, unlinkNode } from './steps.ts'

/*
 * REMOVE of a non-directory as ONE statement in autocommit (one round trip). The entry's
 * DELETE decides: if another statement removed it first, ours deletes nothing and nothing else
 * happens. The child's nlink drops with an UPDATE, which re-reads the newest row version if a
 * concurrent link() changed it, and the delfile row is made from what that UPDATE returned, so
 * the count is right whichever committed first. With no row back, the caller runs the
 * transaction below, which gives the exact error (ENOENT, EISDIR, ESTALE, ENOTDIR).
 */
const REMOVE_SQL = `WITH d AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1 AND gen = $2 AND type = 2
), e AS (
  DELETE FROM tsnfs_edge WHERE parent = $1 AND name = $3 AND type <> 2 AND EXISTS (SELECT 1 FROM d)
  RETURNING inode
), c AS (
  UPDATE tsnfs_node SET nlink = nlink - 1, ctime_sec = $4::bigint, ctime_nsec = $5::integer, ver = ver + 1
  WHERE inode IN (SELECT inode FROM e) RETURNING ${NODE_COLUMNS}
), q AS (
  INSERT INTO tsnfs_delfile (inode, size, since) SELECT inode, size, $6::bigint FROM c WHERE nlink <= 0
), p AS (
  UPDATE tsnfs_node SET mtime_sec = $4::bigint, mtime_nsec = $5::integer, ctime_sec = $4::bigint, ctime_nsec = $5::integer,
    ver = ver + 1
  WHERE inode = $1 AND EXISTS (SELECT 1 FROM e) RETURNING ${NODE_COLUMNS}
)
SELECT ${nodeColumnsAs('d', 'b')}, ${nodeColumnsAs('p', 'a')}, ${nodeColumnsAs('c', 'c')},
  pg_notify($7, ${payloadSql('$8', ['p', 'c'])}) AS notified
FROM d, p, c`

export async function removeFast(db: SqlDb, sid: bigint, dir: FileRef, name: Buffer): Promise<Changed<DirChange> | null> {
  const t = now()
  const r = await db.query(REMOVE_SQL, [dir.id, dir.gen, name, t.sec, t.nsec, Date.now(), CHANGE_CHANNEL, sid])
  const row = r.rows[0]
  if (row === undefined) return null
  const before = nodeOf(row, 'b')
  const after = nodeOf(row, 'a')
  const child = nodeOf(row, 'c')
  const gone = child.attr.nlink <= 0
  return {
    value: { before: before.attr, after: after.attr },
    touched: [dir.id, child.attr.fileid],
    nodes: gone ? [after] : [after, child],
    freed: gone ? child.attr.fileid : null,
    edits: [{ parent: dir.id, name, inode: null }],
  }
}

/*
 * RMDIR as one statement in a REPEATABLE READ transaction (BEGIN, it, COMMIT: three round
 * trips): the entry goes and the directory's row with it if the directory is empty in the
 * snapshot. A create racing into it updates its row, which our DELETE then meets: 40001, retried
 * (or, if we commit first, the create finds no directory). When the statement changes nothing,
 * the same transaction finds the exact error (removeSlow).
 */
const RMDIR_SQL = `WITH d AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1::bigint AND gen = $2::integer AND type = 2 AND nlink > 0
), k AS (
  SELECT e.inode FROM tsnfs_edge e JOIN tsnfs_node n ON n.inode = e.inode
  WHERE e.parent = $1::bigint AND e.name = $3::bytea AND n.type = 2 AND EXISTS (SELECT 1 FROM d)
    AND NOT EXISTS (SELECT 1 FROM tsnfs_edge x WHERE x.parent = e.inode)
), de AS (
  DELETE FROM tsnfs_edge WHERE parent = $1::bigint AND name = $3::bytea AND EXISTS (SELECT 1 FROM k)
), g AS (
  DELETE FROM tsnfs_node WHERE inode IN (SELECT inode FROM k) RETURNING inode
), p AS (
  UPDATE tsnfs_node SET nlink = nlink - 1, mtime_sec = $4::bigint, mtime_nsec = $5::integer,
    ctime_sec = $4::bigint, ctime_nsec = $5::integer, ver = ver + 1
  WHERE inode = $1::bigint AND EXISTS (SELECT 1 FROM k) RETURNING ${NODE_COLUMNS}
)
SELECT ${nodeColumnsAs('d', 'b')}, ${nodeColumnsAs('p', 'a')}, g.inode AS gone,
  pg_notify($6, ${payloadSql('$7', ['p'], ['g'])}) AS notified
FROM d, p, g`

async function rmdirFast(tx: SqlTx, sid: bigint, dir: FileRef, name: Buffer, t: Timespec): Promise<Changed<DirChange> | null> {
  const r = await tx.query(RMDIR_SQL, [dir.id, dir.gen, name, t.sec, t.nsec, CHANGE_CHANNEL, sid])
  const row = r.rows[0]
  if (row === undefined) return null
  const after = nodeOf(row, 'a')
  return {
    value: { before: nodeOf(row, 'b').attr, after: after.attr },
    touched: [dir.id, BigInt(row['gone'] as string)], nodes: [after], freed: null,
    edits: [{ parent: dir.id, name, inode: null }], dropped: 1,
  }
}

/** REMOVE (when removeFast did not apply) or RMDIR: one transaction. */
export function removeEntry(
  db: SqlDb, sid: bigint | null, dir: FileRef, name: Buffer, wantDir: boolean, oneStatement = true,
): Promise<Changed<DirChange>> {
  return db.transaction(async (tx) => {
    const t = now()
    const fast = wantDir && oneStatement && sid !== null ? await rmdirFast(tx, sid, dir, name, t) : null
    return fast ?? await removeSlow(tx, sid, dir, name, wantDir, t)
  }, { label: wantDir ? 'rmdir' : 'remove' })
}

/** Step by step, each check giving its exact error. */
async function removeSlow(tx: SqlTx, sid: bigint | null, dir: FileRef, name: Buffer, wantDir: boolean, t: Timespec): Promise<Changed<DirChange>> {
  const e = await fetchEntry(tx, dir, name)
  const child = childOf(e)
  const isDir = child.attr.type === 'dir'
  // unlink(2) on Linux: a directory is EISDIR; rmdir(2) of a non-directory is ENOTDIR.
  if (!wantDir && isDir) throw new VfsError('EISDIR')
  if (wantDir && !isDir) throw new VfsError('ENOTDIR')
  if (isDir && await hasEntries(tx, child.attr.fileid)) throw new VfsError('ENOTEMPTY')
  await dropEdge(tx, dir.id, name)
  const left = await unlinkNode(tx, child, t)
  const touched = [dir.id, child.attr.fileid]
  const d = await touchDir(tx, dir.id, t, isDir ? -1 : 0, false, announce(sid, touched))
  const nodes: Node[] = left === null ? [d.node] : [d.node, left]
  const freed = left === null && !isDir ? child.attr.fileid : null
  return {
    value: { before: e.dir.attr, after: d.node.attr }, touched, nodes, freed, edits: [{ parent: dir.id, name, inode: null }],
    dropped: isDir ? 1 : 0,
  }
}
