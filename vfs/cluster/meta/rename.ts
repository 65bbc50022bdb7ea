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
 */
import { VfsError } from '../../errors.ts'
import type { DirChange, FileRef } from '../../types.ts'
import { changePayload } from '../change.ts'
import { CHANGE_CHANNEL, ROOT_INODE } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { childOf, fetchEntry } from './lookup.ts'
import { NODE_COLUMNS, nodeOf, now } from './node.ts'
import type { Node } from './node.ts'
import { addEdge, dropEdge, hasEntries, touchDir, unlinkNode } from './steps.ts'

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

export function renameEntry(
  db: SqlDb, sid: bigint, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer,
): Promise<Changed<{ from: DirChange; to: DirChange }>> {
  return db.transaction(async (tx) => {
    const src = await fetchEntry(tx, fromDir, fromName)
    const dst = await fetchEntry(tx, toDir, toName)
    const moving = childOf(src)
    const victim = dst.child
    const sameDir = fromDir.id === toDir.id
    const unchanged = (): Changed<{ from: DirChange; to: DirChange }> => ({
      value: { from: { before: src.dir.attr, after: src.dir.attr }, to: { before: dst.dir.attr, after: dst.dir.attr } },
      touched: [], nodes: [], freed: null,
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

    const t = now()
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
    const r = await tx.query(
      `UPDATE tsnfs_node SET ctime_sec = $2, ctime_nsec = $3, ver = ver + 1, parent = CASE WHEN type = 2 THEN $4::bigint ELSE parent END ` +
        `WHERE inode = $1 RETURNING ${NODE_COLUMNS}, pg_notify($5, $6) AS notified`,
      [moving.attr.fileid, t.sec, t.nsec, toDir.id, CHANGE_CHANNEL, changePayload(sid, touched)],
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
    }
  }, { label: 'rename' })
}
