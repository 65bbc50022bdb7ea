/*
 * SETATTR (RFC 1813 §3.3.2) in one transaction. A size change is applied by
 * the data half inside the same transaction (FileData.truncate), after the
 * caller flushed what this server staged for the file, so staged bytes past
 * the new end cannot come back.
 */
import { VfsError } from '../../errors.ts'
import type { Attr, FileRef, SetAttr, Timespec } from '../../types.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import type { FileData } from '../data/types.ts'
import type { SqlDb } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { checkRef, checkSetAttr, NODE_COLUMNS, nodeColumnsAs, nodeOf, now, USED_UNIT } from './node.ts'
import { payloadSql } from './notify-sql.ts'

function timeOf(v: Timespec | 'now' | undefined, old: Timespec, t: Timespec): Timespec {
  return v === undefined ? old : v === 'now' ? t : v
}

export function setAttributes(
  db: SqlDb, sid: bigint | null, data: FileData, f: FileRef, set: SetAttr,
): Promise<Changed<{ before: Attr; after: Attr }>> {
  return db.transaction(async (tx) => {
    const r = await tx.query(`SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1 FOR UPDATE`, [f.id])
    const row = r.rows[0]
    const node = checkRef(row === undefined ? undefined : nodeOf(row), f)
    const a = node.attr
    checkSetAttr(a.type, set)
    const t = now()
    const size = set.size ?? a.size
    // truncate(2): mtime and ctime change when the size does; explicit times win.
    const sizeChanged = size !== a.size
    if (sizeChanged) await data.truncate(tx, f.id, a.size, size)
    const mtime = set.mtime === undefined && sizeChanged ? t : timeOf(set.mtime, a.mtime, t)
    const atime = timeOf(set.atime, a.atime, t)
    const u = await tx.query(
      'UPDATE tsnfs_node SET mode = $2, uid = $3, gid = $4, size = $5, atime_sec = $6, atime_nsec = $7, ' +
        'mtime_sec = $8, mtime_nsec = $9, ctime_sec = $10, ctime_nsec = $11, ver = ver + 1, ' +
        // A shrink dropped the stored bytes past the end (data.truncate): at most the new size counts.
        `used = LEAST(used, (($5::bigint + ${USED_UNIT - 1n}) / ${USED_UNIT}) * ${USED_UNIT}) WHERE inode = $1 ` +
        `RETURNING ${NODE_COLUMNS}${sid === null ? '' : ", pg_notify($12, $13::text || ':' || inode::text || '@' || ver::text) AS notified"}`,
      [f.id, set.mode === undefined ? a.mode : set.mode & 0o7777, set.uid ?? a.uid, set.gid ?? a.gid, size,
        atime.sec, atime.nsec, mtime.sec, mtime.nsec, t.sec, t.nsec, ...(sid === null ? [] : [CHANGE_CHANNEL, sid])],
    )
    const after = nodeOf(u.rows[0] ?? {})
    return { value: { before: a, after: after.attr }, touched: [f.id], nodes: [after], freed: null }
  }, { label: 'setattr' })
}

/*
 * SETATTR without a size (mode, owner, times: chmod, chown, touch) as ONE statement in autocommit:
 * the node's row before (the statement's snapshot) and after (the UPDATE's result, which waits
 * for and re-reads a concurrent change), and the notification. No row: the handle is stale.
 */
/** With the notification, or without it (sid null: cache mode 'per-request'). */
const setattrSql = (notify: boolean): string => `WITH d AS (
  SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1 AND gen = $2 AND nlink > 0
), u AS (
  UPDATE tsnfs_node SET mode = COALESCE($3::integer, mode), uid = COALESCE($4::bigint, uid),
    gid = COALESCE($5::bigint, gid), atime_sec = COALESCE($6::bigint, atime_sec),
    atime_nsec = COALESCE($7::integer, atime_nsec), mtime_sec = COALESCE($8::bigint, mtime_sec),
    mtime_nsec = COALESCE($9::integer, mtime_nsec), ctime_sec = $10::bigint, ctime_nsec = $11::integer, ver = ver + 1
  WHERE inode = $1 AND gen = $2 AND nlink > 0 RETURNING ${NODE_COLUMNS}
)
SELECT ${nodeColumnsAs('d', 'b')}, ${nodeColumnsAs('u', 'a')}${notify ? `, pg_notify($12, ${payloadSql('$13', ['u'])}) AS notified` : ''} FROM d, u`
const SETATTR_SQL = { notify: setattrSql(true), quiet: setattrSql(false) }

export async function setAttributesFast(db: SqlDb, sid: bigint | null, f: FileRef, set: SetAttr): Promise<Changed<{ before: Attr; after: Attr }>> {
  const t = now()
  const at = set.atime === 'now' ? t : set.atime
  const mt = set.mtime === 'now' ? t : set.mtime
  const r = await db.query(sid === null ? SETATTR_SQL.quiet : SETATTR_SQL.notify, [
    f.id, f.gen, set.mode === undefined ? null : set.mode & 0o7777, set.uid ?? null, set.gid ?? null,
    at?.sec ?? null, at?.nsec ?? null, mt?.sec ?? null, mt?.nsec ?? null, t.sec, t.nsec,
    ...(sid === null ? [] : [CHANGE_CHANNEL, sid]),
  ])
  const row = r.rows[0]
  if (row === undefined) throw new VfsError('ESTALE')
  const after = nodeOf(row, 'a')
  return { value: { before: nodeOf(row, 'b').attr, after: after.attr }, touched: [f.id], nodes: [after], freed: null }
}
