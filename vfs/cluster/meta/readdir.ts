/*
 * READDIR / READDIRPLUS pages (RFC 1813 §3.3.16, §3.3.17). Cookies are the
 * entries' own: "." is 1, ".." is 2, and every entry gets the directory's
 * next_cookie when it is made (never reused), so a listing resumed after a
 * removal neither repeats nor skips. Each entry comes with its node (one
 * join), so READDIRPLUS needs no GETATTR per entry.
 */
import type { DirEntry, DirPage, FileRef } from '../../types.ts'
import type { SqlDb } from '../sql.ts'
import { checkDir, checkRef, NODE_COLUMNS, nodeColumnsAs, nodeOf, refOf } from './node.ts'
import type { Node } from './node.ts'

/** The most entries one page asks the database for (a client's count is capped by its byte budget anyway). */
export const MAX_PAGE = 4096

const PAGE_COLUMNS =
  `e.name AS e_name, e.cookie AS e_cookie, ${NODE_COLUMNS.split(', ').map((c) => `n.${c}`).join(', ')} ` +
  'FROM tsnfs_edge e JOIN tsnfs_node n ON n.inode = e.inode '

const PAGE_SQL = `SELECT ${PAGE_COLUMNS}WHERE e.parent = $1 AND e.cookie > $2 ORDER BY e.cookie LIMIT $3`

/*
 * The directory's row and the page in one round trip (a directory not cached, and every READDIR in
 * cache mode 'per-request'): the page is a LATERAL subquery, so the directory's row comes back
 * even when the page is empty (its columns null then).
 */
const PAGE_WITH_DIR_SQL =
  `SELECT ${nodeColumnsAs('d', 'd')}, p.* FROM tsnfs_node d LEFT JOIN LATERAL (SELECT ${PAGE_COLUMNS}` +
  'WHERE e.parent = d.inode AND e.cookie > $2 ORDER BY e.cookie LIMIT $3) p ON true WHERE d.inode = $1'

const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')

/**
 * A page of `dir`: given as its node (cached: one query for the page), or as a handle (the
 * directory's row read with the page, in one query; ESTALE/ENOTDIR as GETATTR would say).
 */
export async function readdirPage(
  db: SqlDb, dir: Node | FileRef, cookie: bigint, max: number, onNode: (n: Node, name: Buffer, dir: Node) => void,
): Promise<{ dir: Node; page: DirPage }> {
  const want = Math.max(1, Math.min(max, MAX_PAGE))
  const dots = (cookie < 1n ? 1 : 0) + (cookie < 2n ? 1 : 0)
  const left = Math.max(0, want - dots)
  const from = cookie < 2n ? 2n : cookie
  let node: Node
  let rows: Record<string, unknown>[]
  if ('attr' in dir) {
    node = dir
    // One more than asked: whether it exists tells eof without another query.
    rows = left === 0 ? [] : (await db.query(PAGE_SQL, [node.attr.fileid, from, left + 1])).rows
  } else {
    const r = await db.query(PAGE_WITH_DIR_SQL, [dir.id, from, left + 1])
    const first = r.rows[0]
    node = checkDir(checkRef(first === undefined ? undefined : nodeOf(first, 'd'), dir))
    rows = r.rows.filter((row) => row['e_name'] !== null && row['e_name'] !== undefined)
  }
  const entries: DirEntry[] = []
  const d = node.attr
  if (cookie < 1n) entries.push({ name: DOT, fileid: d.fileid, cookie: 1n, ref: refOf(d), attr: d })
  if (cookie < 2n && entries.length < want) entries.push({ name: DOTDOT, fileid: node.parent, cookie: 2n })
  if (left === 0) return { dir: node, page: { entries, eof: false } }
  for (const row of rows.slice(0, left)) {
    const n = nodeOf(row)
    const name = row['e_name'] as Buffer
    onNode(n, name, node)
    entries.push({ name, fileid: n.attr.fileid, cookie: BigInt(row['e_cookie'] as string), ref: refOf(n.attr), attr: n.attr })
  }
  return { dir: node, page: { entries, eof: rows.length <= left } }
}
