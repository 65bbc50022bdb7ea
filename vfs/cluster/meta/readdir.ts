/*
 * READDIR / READDIRPLUS pages (RFC 1813 §3.3.16, §3.3.17). Cookies are the
 * entries' own: "." is 1, ".." is 2, and every entry gets the directory's
 * next_cookie when it is made (never reused), so a listing resumed after a
 * removal neither repeats nor skips. Each entry comes with its node (one
 * join), so READDIRPLUS needs no GETATTR per entry.
 */
import type { DirEntry, DirPage } from '../../types.ts'
import type { SqlDb } from '../sql.ts'
import { NODE_COLUMNS, nodeOf, refOf } from './node.ts'
import type { Node } from './node.ts'

/** The most entries one page asks the database for (a client's count is capped by its byte budget anyway). */
export const MAX_PAGE = 4096

const PAGE_SQL =
  `SELECT e.name AS e_name, e.cookie AS e_cookie, ${NODE_COLUMNS.split(', ').map((c) => `n.${c}`).join(', ')} ` +
  'FROM tsnfs_edge e JOIN tsnfs_node n ON n.inode = e.inode ' +
  'WHERE e.parent = $1 AND e.cookie > $2 ORDER BY e.cookie LIMIT $3'

const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')

export async function readdirPage(
  db: SqlDb, dir: Node, cookie: bigint, max: number, onNode: (n: Node, name: Buffer) => void,
): Promise<DirPage> {
  const want = Math.max(1, Math.min(max, MAX_PAGE))
  const entries: DirEntry[] = []
  const d = dir.attr
  if (cookie < 1n) entries.push({ name: DOT, fileid: d.fileid, cookie: 1n, ref: refOf(d), attr: d })
  if (cookie < 2n && entries.length < want) entries.push({ name: DOTDOT, fileid: dir.parent, cookie: 2n })
  if (entries.length >= want) return { entries, eof: false }
  const left = want - entries.length
  // One more than asked: whether it exists tells eof without another query.
  const r = await db.query(PAGE_SQL, [d.fileid, cookie < 2n ? 2n : cookie, left + 1])
  const rows = r.rows
  for (const row of rows.slice(0, left)) {
    const n = nodeOf(row)
    const name = row['e_name'] as Buffer
    onNode(n, name)
    entries.push({ name, fileid: n.attr.fileid, cookie: BigInt(row['e_cookie'] as string), ref: refOf(n.attr), attr: n.attr })
  }
  return { entries, eof: rows.length <= left }
}
