/*
 * SETATTR (RFC 1813 §3.3.2) in one transaction. A size change is applied by
 * the data half inside the same transaction (FileData.truncate), after the
 * caller flushed what this server staged for the file, so staged bytes past
 * the new end cannot come back.
 */
import type { Attr, FileRef, SetAttr, Timespec } from '../../types.ts'
import { notifyChanged } from '../change.ts'
import type { FileData } from '../data/types.ts'
import type { SqlDb } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { checkRef, checkSetAttr, NODE_COLUMNS, nodeOf, now } from './node.ts'

function timeOf(v: Timespec | 'now' | undefined, old: Timespec, t: Timespec): Timespec {
  return v === undefined ? old : v === 'now' ? t : v
}

export function setAttributes(
  db: SqlDb, sid: bigint, data: FileData, f: FileRef, set: SetAttr,
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
        'mtime_sec = $8, mtime_nsec = $9, ctime_sec = $10, ctime_nsec = $11 WHERE inode = $1 ' +
        `RETURNING ${NODE_COLUMNS}`,
      [f.id, set.mode === undefined ? a.mode : set.mode & 0o7777, set.uid ?? a.uid, set.gid ?? a.gid, size,
        atime.sec, atime.nsec, mtime.sec, mtime.nsec, t.sec, t.nsec],
    )
    const after = nodeOf(u.rows[0] ?? {})
    await notifyChanged(tx, sid, [f.id])
    return { value: { before: a, after: after.attr }, touched: [f.id], nodes: [after], freed: null }
  }, { label: 'setattr' })
}
