/*
 * REMOVE and RMDIR (RFC 1813 §3.3.12, §3.3.13) in one transaction: the
 * entry goes, the child loses a link (and goes itself at none), the
 * directory's times change, and the change is announced.
 */
import { VfsError } from '../../errors.ts'
import type { DirChange, FileRef } from '../../types.ts'
import { notifyChanged } from '../change.ts'
import type { SqlDb } from '../sql.ts'
import type { Changed } from './change-result.ts'
import { childOf, fetchEntry } from './lookup.ts'
import { now } from './node.ts'
import type { Node } from './node.ts'
import { dropEdge, hasEntries, touchDir, unlinkNode } from './steps.ts'

export function removeEntry(db: SqlDb, sid: bigint, dir: FileRef, name: Buffer, wantDir: boolean): Promise<Changed<DirChange>> {
  return db.transaction(async (tx) => {
    const e = await fetchEntry(tx, dir, name)
    const child = childOf(e)
    const isDir = child.attr.type === 'dir'
    // unlink(2) on Linux: a directory is EISDIR; rmdir(2) of a non-directory is ENOTDIR.
    if (!wantDir && isDir) throw new VfsError('EISDIR')
    if (wantDir && !isDir) throw new VfsError('ENOTDIR')
    if (isDir && await hasEntries(tx, child.attr.fileid)) throw new VfsError('ENOTEMPTY')
    const t = now()
    await dropEdge(tx, dir.id, name)
    const left = await unlinkNode(tx, child, t)
    const d = await touchDir(tx, dir.id, t, isDir ? -1 : 0, false)
    const touched = [dir.id, child.attr.fileid]
    await notifyChanged(tx, sid, touched)
    const nodes: Node[] = left === null ? [d.node] : [d.node, left]
    const freed = left === null && child.attr.type === 'file' ? child.attr.fileid : null
    return { value: { before: e.dir.attr, after: d.node.attr }, touched, nodes, freed }
  }, { label: wantDir ? 'rmdir' : 'remove' })
}
