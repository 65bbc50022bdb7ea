/*
 * The statements the changing transactions (remove, rmdir, rename, link)
 * are built from. Each runs inside the caller's transaction; none commits.
 */
import { VfsError } from '../../errors.ts'
import type { Timespec } from '../../types.ts'
import { CHANGE_CHANNEL } from '../schema.ts'
import { sqlState } from '../sql.ts'
import type { SqlTx } from '../sql.ts'
import { NODE_COLUMNS, nodeOf, typeCode } from './node.ts'
import type { Node } from './node.ts'

/**
 * A directory's entries changed: mtime and ctime become `now`, its link
 * count moves by `nlinkDelta` (subdirectories' ".."), and when `cookie` is
 * asked for, a fresh readdir cookie is taken from next_cookie.
 */
export async function touchDir(
  tx: SqlTx, inode: bigint, now: Timespec, nlinkDelta: number, cookie: boolean, notify?: string,
): Promise<{ node: Node; cookie: bigint }> {
  const r = await tx.query(
    'UPDATE tsnfs_node SET next_cookie = next_cookie + $3, nlink = nlink + $2, ' +
      'mtime_sec = $4, mtime_nsec = $5, ctime_sec = $4, ctime_nsec = $5, ver = ver + 1 WHERE inode = $1 ' +
      `RETURNING ${NODE_COLUMNS}, next_cookie - 1 AS cookie${notify === undefined ? '' : ', pg_notify($6, $7) AS notified'}`,
    [inode, nlinkDelta, cookie ? 1 : 0, now.sec, now.nsec, ...notifyParams(notify)],
  )
  const row = r.rows[0]
  // The caller read the row in this transaction, so it cannot be gone (REPEATABLE READ).
  if (row === undefined) throw new VfsError('ESTALE')
  return { node: nodeOf(row), cookie: BigInt(row['cookie'] as string) }
}

export async function addEdge(tx: SqlTx, parent: bigint, name: Buffer, child: Node, cookie: bigint): Promise<void> {
  await tx.query(
    'INSERT INTO tsnfs_edge (parent, name, inode, type, cookie) VALUES ($1, $2, $3, $4, $5)',
    [parent, name, child.attr.fileid, typeCode(child.attr.type), cookie],
  )
}

export async function dropEdge(tx: SqlTx, parent: bigint, name: Buffer): Promise<void> {
  await tx.query('DELETE FROM tsnfs_edge WHERE parent = $1 AND name = $2', [parent, name])
}

/** Does the directory have any entry? */
export async function hasEntries(tx: SqlTx, dir: bigint): Promise<boolean> {
  const r = await tx.query('SELECT 1 AS one FROM tsnfs_edge WHERE parent = $1 LIMIT 1', [dir])
  return r.rows.length > 0
}

/**
 * One name of `child` is gone (its edge already deleted): ctime changes and
 * nlink drops. A directory goes at once (the caller checked it was empty).
 * Anything else left with no links stays as a row of nlink 0 (ESTALE to
 * every handle) and its inode goes to tsnfs_delfile: the release after the
 * commit (by this server right away, or by any server's sweep if this one
 * dies first) frees its chunks and deletes the row.
 * Returns the node after, or null if it is gone.
 */
export async function unlinkNode(tx: SqlTx, child: Node, now: Timespec): Promise<Node | null> {
  const a = child.attr
  if (a.type === 'dir') {
    await tx.query('DELETE FROM tsnfs_node WHERE inode = $1', [a.fileid])
    return null
  }
  const after = await setLinks(tx, a.fileid, -1, now)
  if (after.attr.nlink > 0) return after
  await tx.query('INSERT INTO tsnfs_delfile (inode, size, since) VALUES ($1, $2, $3)', [a.fileid, a.size, Date.now()])
  return null
}

/** nlink moves by `delta` and ctime becomes `now` (link(2), unlink(2)). */
export async function setLinks(tx: SqlTx, inode: bigint, delta: number, now: Timespec, notify?: string): Promise<Node> {
  const r = await tx.query(
    `UPDATE tsnfs_node SET nlink = nlink + $2, ctime_sec = $3, ctime_nsec = $4, ver = ver + 1 WHERE inode = $1 RETURNING ${NODE_COLUMNS}` +
      (notify === undefined ? '' : ', pg_notify($5, $6) AS notified'),
    [inode, delta, now.sec, now.nsec, ...notifyParams(notify)],
  )
  const row = r.rows[0]
  if (row === undefined) throw new VfsError('ESTALE')
  return nodeOf(row)
}

/*
 * A transaction's change notification rides on its last statement (pg_notify in RETURNING)
 * instead of a statement of its own: one round trip less, and still sent only at commit.
 * `notify` is the payload (change.ts changePayload).
 */
function notifyParams(notify: string | undefined): string[] {
  return notify === undefined ? [] : [CHANGE_CHANNEL, notify]
}

/** Attempts of a transaction that lost a race for a name (23505) before the error goes up. */
const NAME_RACE_ATTEMPTS = 3

/**
 * Run `fn` (a whole transaction) again when it failed on a unique violation
 * (23505): another server made the name after our snapshot. Run again, the
 * transaction sees the name and answers for it (EEXIST, or a replacement).
 */
export async function againOnNameRace<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      if (sqlState(err) !== '23505' || attempt >= NAME_RACE_ATTEMPTS) throw err
    }
  }
}
