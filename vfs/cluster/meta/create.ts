/*
 * CREATE, MKDIR, SYMLINK and MKNOD (RFC 1813 §3.3.8-3.3.11) as ONE
 * data-modifying statement in autocommit: one round trip, atomic, and the
 * change announced (pg_notify in the same statement, so only if it commits).
 *
 * The statement updates the parent (a new cookie from next_cookie, mtime,
 * ctime, a link for a subdirectory) only if it is a live directory of the
 * right generation without that name, then inserts the entry and the node
 * from the updated parent row; with no parent row nothing is inserted. Two
 * servers racing for one name both pass the NOT EXISTS test at most in
 * their snapshots; the edge's primary key rejects the second (23505). The
 * caller then works out what happened (EEXIST, ESTALE, ENOTDIR, or the
 * existing file of an UNCHECKED or retransmitted EXCLUSIVE create) in a
 * transaction: the slow path is only for failures and retransmissions.
 */
import type { FileRef, FileType, Timespec } from '../../types.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import { sqlState } from '../sql.ts'
import type { SqlDb } from '../sql.ts'
import { NODE_COLUMNS, nodeColumnsAs, nodeOf, typeCode } from './node.ts'
import { payloadSql } from './notify-sql.ts'
import type { Node } from './node.ts'
import { touchDir } from './steps.ts'
import { announce } from '../change.ts'

export interface NewNode {
  inode: bigint
  type: FileType
  mode: number
  uid: number
  gid: number
  size: bigint
  rdev: { major: number; minor: number }
  atime: Timespec
  mtime: Timespec
  now: Timespec
  target: Buffer | null
  verifier: Buffer | null
}

export interface Inserted {
  before: Node
  after: Node
  node: Node
}

const CREATE_SQL = `WITH d AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1
), p AS (
  UPDATE tsnfs_node SET next_cookie = next_cookie + 1, nlink = nlink + $16::integer,
    mtime_sec = $12::bigint, mtime_nsec = $13::integer, ctime_sec = $12::bigint, ctime_nsec = $13::integer, ver = ver + 1
  WHERE inode = $1 AND gen = $2 AND type = 2
    AND NOT EXISTS (SELECT 1 FROM tsnfs_edge WHERE parent = $1 AND name = $3)
  RETURNING ${NODE_COLUMNS}, next_cookie - 1 AS cookie
), e AS (
  INSERT INTO tsnfs_edge (parent, name, inode, type, cookie)
  SELECT $1::bigint, $3::bytea, $4::bigint, $5::smallint, cookie FROM p
), n AS (
  INSERT INTO tsnfs_node (inode, gen, type, mode, uid, gid, nlink, size, rdev_major, rdev_minor,
    atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, parent, target, verifier)
  SELECT $4::bigint, 1, $5::smallint, $6::integer, $7::bigint, $8::bigint, $17::integer, $9::bigint,
    $10::integer, $11::integer, $18::bigint, $19::integer, $20::bigint, $21::integer,
    $12::bigint, $13::integer, $22::bigint, $14::bytea, $15::bytea FROM p
  RETURNING ${NODE_COLUMNS}
)
SELECT ${nodeColumnsAs('d', 'b')}, ${nodeColumnsAs('p', 'a')}, ${nodeColumnsAs('n', 'n')},
  pg_notify($23, ${payloadSql('$24', ['p', 'n'])}) AS notified
FROM p, d, n`

/**
 * The same as insertNode in one transaction of single-table statements (engines that refuse a
 * statement modifying tsnfs_node twice, sql.ts SqlDialect): the directory row locked and checked,
 * its cookie taken, the entry and the node inserted; the node's INSERT carries the notification.
 * Six round trips (BEGIN, the locked check, the directory, the entry, the node, COMMIT). Null when the directory is not a live one of that generation or has the name.
 */
export async function insertNodeSteps(db: SqlDb, sid: bigint | null, dir: FileRef, name: Buffer, n: NewNode): Promise<Inserted | null> {
  const isDir = n.type === 'dir'
  try {
    return await db.transaction(async (tx) => {
      const d = await tx.query(
        `SELECT ${NODE_COLUMNS}, EXISTS (SELECT 1 FROM tsnfs_edge WHERE parent = $1 AND name = $3) AS taken ` +
          'FROM tsnfs_node WHERE inode = $1 AND gen = $2 AND type = 2 AND nlink > 0 FOR UPDATE',
        [dir.id, dir.gen, name],
      )
      const row = d.rows[0]
      if (row === undefined || row['taken'] === true) return null
      const before = nodeOf(row)
      const p = await touchDir(tx, dir.id, n.now, isDir ? 1 : 0, true)
      await tx.query('INSERT INTO tsnfs_edge (parent, name, inode, type, cookie) VALUES ($1, $2, $3, $4, $5)',
        [dir.id, name, n.inode, typeCode(n.type), p.cookie])
      const payload = announce(sid, [dir.id, n.inode])
      const r = await tx.query(
        `INSERT INTO tsnfs_node (inode, gen, type, mode, uid, gid, nlink, size, rdev_major, rdev_minor,
          atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, parent, target, verifier)
         VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         RETURNING ${NODE_COLUMNS}${payload === undefined ? '' : ', pg_notify($19, $20) AS notified'}`,
        [n.inode, typeCode(n.type), n.mode, n.uid, n.gid, isDir ? 2 : 1, n.size, n.rdev.major, n.rdev.minor,
          n.atime.sec, n.atime.nsec, n.mtime.sec, n.mtime.nsec, n.now.sec, n.now.nsec, isDir ? dir.id : 0n,
          n.target, n.verifier, ...(payload === undefined ? [] : [CHANGE_CHANNEL, payload])],
      )
      return { before, after: p.node, node: nodeOf(r.rows[0] ?? {}) }
    }, { label: 'create' })
  } catch (err) {
    if (sqlState(err) === '23505') return null
    throw err
  }
}

/** Insert `n` as `name` in `dir`; null when the fast path did not apply (the caller finds out why). */
export async function insertNode(db: SqlDb, sid: bigint, dir: FileRef, name: Buffer, n: NewNode): Promise<Inserted | null> {
  const isDir = n.type === 'dir'
  const params = [
    dir.id, dir.gen, name, n.inode, typeCode(n.type), n.mode, n.uid, n.gid, n.size,
    n.rdev.major, n.rdev.minor, n.now.sec, n.now.nsec, n.target, n.verifier,
    isDir ? 1 : 0, isDir ? 2 : 1, n.atime.sec, n.atime.nsec, n.mtime.sec, n.mtime.nsec,
    isDir ? dir.id : 0n, CHANGE_CHANNEL, sid,
  ]
  let rows
  try {
    rows = (await db.query(CREATE_SQL, params)).rows
  } catch (err) {
    // The entry appeared between our snapshot and our insert (another server won the name).
    if (sqlState(err) === '23505') return null
    throw err
  }
  const row = rows[0]
  if (row === undefined) return null
  return { before: nodeOf(row, 'b'), after: nodeOf(row, 'a'), node: nodeOf(row, 'n') }
}
