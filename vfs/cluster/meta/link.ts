/* LINK (RFC 1813 §3.3.15) in one transaction: a new entry, one more link, ctime of both. */
import { VfsError } from '../../errors.ts'
import type { Attr, DirChange, FileRef } from '../../types.ts'
import { changePayload } from '../change.ts'
import type { SqlDb } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { fetchEntry } from './lookup.ts'
import { checkRef, NODE_COLUMNS, nodeOf, now } from './node.ts'
import { LINK_MAX } from './names.ts'
import { addEdge, setLinks, touchDir } from './steps.ts'

export function linkEntry(db: SqlDb, sid: bigint, f: FileRef, dir: FileRef, name: Buffer): Promise<Changed<{ attr: Attr; dir: DirChange }>> {
  return db.transaction(async (tx) => {
    const r = await tx.query(`SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1`, [f.id])
    const row = r.rows[0]
    const file = checkRef(row === undefined ? undefined : nodeOf(row), f)
    // link(2): hard links to directories are EPERM.
    if (file.attr.type === 'dir') throw new VfsError('EPERM', 'hard link to a directory')
    const e = await fetchEntry(tx, dir, name)
    if (e.child !== undefined) throw new VfsError('EEXIST')
    if (file.attr.nlink >= LINK_MAX) throw new VfsError('EMLINK')
    const t = now()
    const d = await touchDir(tx, dir.id, t, 0, true)
    await addEdge(tx, dir.id, name, file, d.cookie)
    const touched = [dir.id, f.id]
    const after = await setLinks(tx, f.id, 1, t, changePayload(sid, touched))
    return { value: { attr: after.attr, dir: { before: e.dir.attr, after: d.node.attr } }, touched, nodes: [d.node, after], freed: null }
  }, { label: 'link' })
}
