/*
 * LINK (RFC 1813 §3.3.15) in one transaction: a new entry, one more link,
 * ctime of both. The transaction is one statement (BEGIN, it, COMMIT: three
 * round trips) that checks everything in its snapshot and changes rows only
 * if all holds; REPEATABLE READ turns a concurrent change of any row it
 * writes into 40001 (retried), and a name made meanwhile into 23505 (run
 * again: the name is then there). When the statement changes nothing, the
 * same transaction works out the exact error step by step (linkSlow).
 */
import { VfsError } from '../../errors.ts'
import type { Attr, DirChange, FileRef, Timespec } from '../../types.ts'
import { announce } from '../change.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { fetchEntry } from './lookup.ts'
import { checkRef, NODE_COLUMNS, nodeColumnsAs, nodeOf, now } from './node.ts'
import { LINK_MAX } from './names.ts'
import { payloadSql } from './notify-sql.ts'
import { addEdge, againOnNameRace, setLinks, touchDir } from './steps.ts'

type Linked = Changed<{ attr: Attr; dir: DirChange }>

const LINK_SQL = `WITH f AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node
  WHERE inode = $1::bigint AND gen = $2::integer AND nlink > 0 AND type <> 2 AND nlink < ${LINK_MAX}
), d AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node
  WHERE inode = $3::bigint AND gen = $4::integer AND type = 2 AND nlink > 0 AND EXISTS (SELECT 1 FROM f)
    AND NOT EXISTS (SELECT 1 FROM tsnfs_edge WHERE parent = $3::bigint AND name = $5::bytea)
), p AS (
  UPDATE tsnfs_node SET next_cookie = next_cookie + 1, mtime_sec = $6::bigint, mtime_nsec = $7::integer,
    ctime_sec = $6::bigint, ctime_nsec = $7::integer, ver = ver + 1
  WHERE inode = $3::bigint AND EXISTS (SELECT 1 FROM d) RETURNING ${NODE_COLUMNS}, next_cookie - 1 AS cookie
), e AS (
  INSERT INTO tsnfs_edge (parent, name, inode, type, cookie)
  SELECT $3::bigint, $5::bytea, f.inode, f.type, p.cookie FROM p, f
), c AS (
  UPDATE tsnfs_node SET nlink = nlink + 1, ctime_sec = $6::bigint, ctime_nsec = $7::integer, ver = ver + 1
  WHERE inode = $1::bigint AND EXISTS (SELECT 1 FROM d) RETURNING ${NODE_COLUMNS}
)
SELECT ${nodeColumnsAs('d', 'b')}, ${nodeColumnsAs('p', 'a')}, ${nodeColumnsAs('c', 'c')},
  pg_notify($8, ${payloadSql('$9', ['p', 'c'])}) AS notified
FROM d, p, c`

async function linkFast(tx: SqlTx, sid: bigint, f: FileRef, dir: FileRef, name: Buffer, t: Timespec): Promise<Linked | null> {
  const r = await tx.query(LINK_SQL, [f.id, f.gen, dir.id, dir.gen, name, t.sec, t.nsec, CHANGE_CHANNEL, sid])
  const row = r.rows[0]
  if (row === undefined) return null
  const before = nodeOf(row, 'b')
  const after = nodeOf(row, 'a')
  const file = nodeOf(row, 'c')
  return {
    value: { attr: file.attr, dir: { before: before.attr, after: after.attr } },
    touched: [dir.id, f.id], nodes: [after, file], freed: null,
    edits: [{ parent: dir.id, name, inode: f.id }],
  }
}

/** The same, a step at a time: for the exact error when linkFast changed nothing. */
async function linkSlow(tx: SqlTx, sid: bigint | null, f: FileRef, dir: FileRef, name: Buffer, t: Timespec): Promise<Linked> {
  const r = await tx.query(`SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1`, [f.id])
  const row = r.rows[0]
  const file = checkRef(row === undefined ? undefined : nodeOf(row), f)
  // link(2): hard links to directories are EPERM.
  if (file.attr.type === 'dir') throw new VfsError('EPERM', 'hard link to a directory')
  const e = await fetchEntry(tx, dir, name)
  if (e.child !== undefined) throw new VfsError('EEXIST')
  if (file.attr.nlink >= LINK_MAX) throw new VfsError('EMLINK')
  const d = await touchDir(tx, dir.id, t, 0, true)
  await addEdge(tx, dir.id, name, file, d.cookie)
  const touched = [dir.id, f.id]
  const after = await setLinks(tx, f.id, 1, t, announce(sid, touched))
  return {
    value: { attr: after.attr, dir: { before: e.dir.attr, after: d.node.attr } },
    touched, nodes: [d.node, after], freed: null, edits: [{ parent: dir.id, name, inode: f.id }],
  }
}

export function linkEntry(db: SqlDb, sid: bigint | null, f: FileRef, dir: FileRef, name: Buffer, oneStatement = true): Promise<Linked> {
  return againOnNameRace(() => db.transaction(async (tx) => {
    const t = now()
    return (oneStatement && sid !== null ? await linkFast(tx, sid, f, dir, name, t) : null) ?? await linkSlow(tx, sid, f, dir, name, t)
  }, { label: 'link' }))
}
