/*
 * A directory and one of its entries in one statement (one round trip): the
 * directory's node, and through a LEFT JOIN the entry and the child's node.
 * LOOKUP is this and nothing else when the cache cannot answer, and the
 * changing operations start with it inside their transactions.
 */
import { VfsError } from '../../errors.ts'
import type { FileRef } from '../../types.ts'
import type { SqlTx } from '../sql.ts'
import { checkDir, checkRef, hasNode, nodeColumnsAs, nodeOf } from './node.ts'
import type { Node } from './node.ts'

export interface Entry {
  dir: Node
  /** The named child, if the directory has one by that name. */
  child: Node | undefined
  /** The child's exclusive-create verifier (RFC 1813 §3.3.8), when it has one. */
  verifier: Buffer | null
}

const ENTRY_SQL =
  `SELECT ${nodeColumnsAs('d', 'd')}, ${nodeColumnsAs('c', 'c')}, c.verifier AS c_verifier ` +
  'FROM tsnfs_node d LEFT JOIN tsnfs_edge e ON e.parent = d.inode AND e.name = $2 ' +
  'LEFT JOIN tsnfs_node c ON c.inode = e.inode WHERE d.inode = $1'

/** `dir` (ESTALE if gone, ENOTDIR if not a directory) and its entry `name`. */
export async function fetchEntry(q: SqlTx, dir: FileRef, name: Buffer): Promise<Entry> {
  const r = await q.query(ENTRY_SQL, [dir.id, name])
  const row = r.rows[0]
  const d = checkDir(checkRef(row === undefined ? undefined : nodeOf(row, 'd'), dir))
  if (row === undefined || !hasNode(row, 'c')) return { dir: d, child: undefined, verifier: null }
  const v = row['c_verifier']
  return { dir: d, child: nodeOf(row, 'c'), verifier: Buffer.isBuffer(v) ? v : null }
}

/** The entry's child, or ENOENT. */
export function childOf(e: Entry): Node {
  if (e.child === undefined) throw new VfsError('ENOENT')
  return e.child
}
