/*
 * RENAME (RFC 1813 §3.3.14, POSIX rename(2)) in one transaction, across
 * directories included.
 *
 * Loop prevention: a directory may not move into its own subtree. Inside
 * the transaction we list the target directory's ancestors (a recursive
 * query up the parent column) and lock them FOR SHARE; the source must not
 * be among them. The locks matter across servers: A moving x under y while
 * B moves y under x each read a path that the other is about to change; A
 * updates x's row, which B share-locked, and B updates y's, which A
 * share-locked, so one of them waits, deadlocks or fails serialization
 * (40P01/40001), is retried, and then sees the other's move: no cycle.
 *
 * The usual renames (a name to a free name, a file over a file) are one
 * statement in the transaction (BEGIN, it, COMMIT: three round trips),
 * renameFast: it checks everything in its snapshot, with the ancestor chain
 * as a recursive CTE locked FOR SHARE, and changes rows only if all holds.
 * Anything else (errors, a directory replacing a directory, two links of
 * one file) is worked out step by step in the same transaction.
 */
import { VfsError } from '../../errors.ts'
import type { DirChange, FileRef, Timespec } from '../../types.ts'
import { announce } from '../change.ts'
import { CHANGE_CHANNEL, ROOT_INODE } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { childOf, fetchEntry } from './lookup.ts'
import { NODE_COLUMNS, nodeOf, now } from './node.ts'
import { payloadSql } from './notify-sql.ts'
import type { Node } from './node.ts'
import { addEdge, againOnNameRace, dropEdge, hasEntries, touchDir, unlinkNode } from './steps.ts'

/** Longest chain of parents we walk before calling the tree corrupt. */
const MAX_DEPTH = 10_000

/** `dir` and every directory above it up to the root, each locked FOR SHARE until the commit. */
async function lockAncestors(tx: SqlTx, dir: bigint): Promise<Set<bigint>> {
  const r = await tx.query(
    'WITH RECURSIVE anc (inode, depth) AS (SELECT $1::bigint, 0 UNION ALL ' +
      'SELECT n.parent, a.depth + 1 FROM tsnfs_node n JOIN anc a ON n.inode = a.inode ' +
      `WHERE n.inode <> ${ROOT_INODE} AND a.depth < ${MAX_DEPTH}) ` +
      'SELECT inode FROM tsnfs_node WHERE inode IN (SELECT inode FROM anc) FOR SHARE',
    [dir],
  )
  return new Set(r.rows.map((row) => BigInt(row['inode'] as string)))
}

type Renamed = Changed<{ from: DirChange; to: DirChange }>

/*
 * $1/$2 source directory and its generation, $3 source name, $4/$5 target directory, $6 target
 * name, $7/$8 now, $9 delfile time, $10 channel, $11 session. fd/td: the directories; s: what
 * moves; v: what the target name holds; anc: the target's ancestors, walked only when a directory
 * changes parent, and lk locks them but the two directories, which the statement updates anyway
 * (a concurrent change of any of them is then 40001/40P01). ok: one row if this statement
 * applies (no victim, or a non-directory replacing another object), none otherwise.
 */
const RENAME_SQL = `WITH RECURSIVE fd AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1::bigint AND gen = $2::integer AND type = 2 AND nlink > 0
), td AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $4::bigint AND gen = $5::integer AND type = 2 AND nlink > 0
), s AS (
  SELECT n.inode, n.type FROM tsnfs_edge e JOIN tsnfs_node n ON n.inode = e.inode WHERE e.parent = $1::bigint AND e.name = $3::bytea
), v AS (
  SELECT n.inode, n.type FROM tsnfs_edge e JOIN tsnfs_node n ON n.inode = e.inode WHERE e.parent = $4::bigint AND e.name = $6::bytea
), anc (inode, depth) AS (
  SELECT $4::bigint, 0 WHERE $1::bigint <> $4::bigint AND EXISTS (SELECT 1 FROM s WHERE s.type = 2)
  UNION ALL
  SELECT n.parent, a.depth + 1 FROM tsnfs_node n JOIN anc a ON n.inode = a.inode
  WHERE n.inode <> ${ROOT_INODE} AND a.depth < ${MAX_DEPTH}
), lk AS (
  SELECT inode FROM tsnfs_node WHERE inode IN (SELECT inode FROM anc) AND inode <> $1::bigint AND inode <> $4::bigint FOR SHARE
), ok AS (
  SELECT s.inode AS moving, s.type AS mtype, v.inode AS victim,
    CASE WHEN s.type = 2 AND $1::bigint <> $4::bigint THEN 1 ELSE 0 END AS moved
  FROM s LEFT JOIN v ON true
  WHERE EXISTS (SELECT 1 FROM fd) AND EXISTS (SELECT 1 FROM td)
    AND (v.inode IS NULL OR (v.type <> 2 AND s.type <> 2 AND v.inode <> s.inode))
    AND NOT EXISTS (SELECT 1 FROM anc WHERE anc.inode = s.inode)
    AND (SELECT count(*) FROM lk) >= 0
), p AS (
  UPDATE tsnfs_node SET next_cookie = next_cookie + CASE WHEN inode = $4::bigint THEN 1 ELSE 0 END,
    nlink = nlink + CASE WHEN $1::bigint = $4::bigint THEN 0 WHEN inode = $4::bigint THEN ok.moved ELSE -ok.moved END,
    mtime_sec = $7::bigint, mtime_nsec = $8::integer, ctime_sec = $7::bigint, ctime_nsec = $8::integer, ver = ver + 1
  FROM ok WHERE inode IN ($1::bigint, $4::bigint)
  RETURNING ${NODE_COLUMNS}, next_cookie - 1 AS cookie
), de AS (
  DELETE FROM tsnfs_edge WHERE parent = $1::bigint AND name = $3::bytea AND EXISTS (SELECT 1 FROM ok)
), ne AS (
  INSERT INTO tsnfs_edge (parent, name, inode, type, cookie)
  SELECT $4::bigint, $6::bytea, ok.moving, ok.mtype, p.cookie FROM ok, p WHERE p.inode = $4::bigint AND ok.victim IS NULL
), re AS (
  UPDATE tsnfs_edge SET inode = ok.moving, type = ok.mtype, cookie = p.cookie FROM ok, p
  WHERE tsnfs_edge.parent = $4::bigint AND tsnfs_edge.name = $6::bytea AND p.inode = $4::bigint AND ok.victim IS NOT NULL
), m AS (
  UPDATE tsnfs_node SET ctime_sec = $7::bigint, ctime_nsec = $8::integer, ver = ver + 1,
    parent = CASE WHEN type = 2 THEN $4::bigint ELSE parent END
  WHERE inode = (SELECT moving FROM ok) RETURNING ${NODE_COLUMNS}
), vu AS (
  UPDATE tsnfs_node SET nlink = nlink - 1, ctime_sec = $7::bigint, ctime_nsec = $8::integer, ver = ver + 1
  WHERE inode = (SELECT victim FROM ok) RETURNING ${NODE_COLUMNS}
), q AS (
  INSERT INTO tsnfs_delfile (inode, size, since) SELECT inode, size, $9::bigint FROM vu WHERE nlink <= 0
), nt AS (
  SELECT pg_notify($10, ${payloadSql('$11', ['p', 'm', 'vu'])}) AS x FROM ok
)
SELECT u.*, c.notified FROM (
  SELECT 'bf' AS tag, ${NODE_COLUMNS} FROM fd
  UNION ALL SELECT 'bt', ${NODE_COLUMNS} FROM td
  UNION ALL SELECT CASE WHEN inode = $4::bigint THEN 'at' ELSE 'af' END, ${NODE_COLUMNS} FROM p
  UNION ALL SELECT 'm', ${NODE_COLUMNS} FROM m
  UNION ALL SELECT 'v', ${NODE_COLUMNS} FROM vu
) u, (SELECT count(*) AS notified FROM nt) c`

async function renameFast(
  tx: SqlTx, sid: bigint, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, t: Timespec,
): Promise<Renamed | null> {
  const r = await tx.query(RENAME_SQL, [
    fromDir.id, fromDir.gen, fromName, toDir.id, toDir.gen, toName, t.sec, t.nsec, Date.now(), CHANGE_CHANNEL, sid,
  ])
  const byTag = new Map<string, Node>()
  for (const row of r.rows) byTag.set(String(row['tag']), nodeOf(row))
  const moved = byTag.get('m')
  const bf = byTag.get('bf')
  const bt = byTag.get('bt')
  const at = byTag.get('at')
  if (moved === undefined || bf === undefined || bt === undefined || at === undefined) return null
  const af = byTag.get('af') ?? at
  const victim = byTag.get('v')
  const touched = [fromDir.id, toDir.id, moved.attr.fileid]
  const nodes = [at, moved]
  if (af !== at) nodes.push(af)
  let freed: bigint | null = null
  if (victim !== undefined) {
    touched.push(victim.attr.fileid)
    if (victim.attr.nlink > 0) nodes.push(victim)
    else freed = victim.attr.fileid
  }
  return {
    value: { from: { before: bf.attr, after: af.attr }, to: { before: bt.attr, after: at.attr } },
    touched, nodes, freed,
    edits: [{ parent: fromDir.id, name: fromName, inode: null }, { parent: toDir.id, name: toName, inode: moved.attr.fileid }],
  }
}

export function renameEntry(
  db: SqlDb, sid: bigint | null, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, oneStatement = true,
): Promise<Renamed> {
  return againOnNameRace(() => db.transaction(async (tx) => {
    const t = now()
    return (oneStatement && sid !== null ? await renameFast(tx, sid, fromDir, fromName, toDir, toName, t) : null) ??
      await renameSlow(tx, sid, fromDir, fromName, toDir, toName, t)
  }, { label: 'rename' }))
}

/** Step by step, each check giving its exact error; also the cases renameFast leaves. */
async function renameSlow(
  tx: SqlTx, sid: bigint | null, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, t: Timespec,
): Promise<Renamed> {
  const src = await fetchEntry(tx, fromDir, fromName)
  const dst = await fetchEntry(tx, toDir, toName)
  const moving = childOf(src)
  const victim = dst.child
  const sameDir = fromDir.id === toDir.id
  const unchanged = (): Changed<{ from: DirChange; to: DirChange }> => ({
    value: { from: { before: src.dir.attr, after: src.dir.attr }, to: { before: dst.dir.attr, after: dst.dir.attr } },
    touched: [], nodes: [], freed: null, edits: [],
  })
  // Both names already refer to the same object (one entry, or two hard links): nothing to do.
  if (victim !== undefined && victim.attr.fileid === moving.attr.fileid) return unchanged()
  const isDir = moving.attr.type === 'dir'
  if (victim !== undefined) {
    if (isDir && victim.attr.type !== 'dir') throw new VfsError('ENOTDIR')
    if (!isDir && victim.attr.type === 'dir') throw new VfsError('EISDIR')
  }
  if (isDir && !sameDir) {
    const above = await lockAncestors(tx, toDir.id)
    if (above.has(moving.attr.fileid)) throw new VfsError('EINVAL', 'a directory cannot move into its own subtree')
  }
  if (victim?.attr.type === 'dir' && await hasEntries(tx, victim.attr.fileid)) throw new VfsError('ENOTEMPTY')

  const touched = [fromDir.id, toDir.id, moving.attr.fileid]
  let victimLeft: Node | null = null
  if (victim !== undefined) {
    touched.push(victim.attr.fileid)
    await dropEdge(tx, toDir.id, toName)
    victimLeft = await unlinkNode(tx, victim, t)
  }
  await dropEdge(tx, fromDir.id, fromName)
  // Link counts of the parents: a moved directory's ".." leaves one and joins the other;
  // a replaced directory takes its ".." link from the target.
  const moved = isDir && !sameDir ? 1 : 0
  const replacedDir = victim?.attr.type === 'dir' ? 1 : 0
  const to = await touchDir(tx, toDir.id, t, moved - replacedDir, true)
  const from = sameDir ? to : await touchDir(tx, fromDir.id, t, -moved, false)
  await addEdge(tx, toDir.id, toName, moving, to.cookie)
  // The last statement carries the notification (pg_notify in RETURNING: no round trip of its own).
  const payload = announce(sid, touched)
  const r = await tx.query(
    `UPDATE tsnfs_node SET ctime_sec = $2, ctime_nsec = $3, ver = ver + 1, parent = CASE WHEN type = 2 THEN $4::bigint ELSE parent END ` +
      `WHERE inode = $1 RETURNING ${NODE_COLUMNS}${payload === undefined ? '' : ', pg_notify($5, $6) AS notified'}`,
    [moving.attr.fileid, t.sec, t.nsec, toDir.id, ...(payload === undefined ? [] : [CHANGE_CHANNEL, payload])],
  )
  const row = r.rows[0]
  if (row === undefined) throw new VfsError('ESTALE')
  const nodes = [to.node, nodeOf(row)]
  if (!sameDir) nodes.push(from.node)
  if (victimLeft !== null) nodes.push(victimLeft)
  const freed = victim !== undefined && victimLeft === null && victim.attr.type !== 'dir' ? victim.attr.fileid : null
  return {
    value: { from: { before: src.dir.attr, after: from.node.attr }, to: { before: dst.dir.attr, after: to.node.attr } },
    touched, nodes, freed,
    edits: [{ parent: fromDir.id, name: fromName, inode: null }, { parent: toDir.id, name: toName, inode: moving.attr.fileid }],
    dropped: victim?.attr.type === 'dir' ? 1 : 0,
  }
}
