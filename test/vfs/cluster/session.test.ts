/*
 * Sessions: each server registers, heartbeats and leaves; a server finding
 * another's session stale removes it, reclaims its unfinished uploads and
 * releases files queued for deletion. A removed file's chunks are released
 * right after the remove commits.
 */
import t from 'tap'
import { listSessions } from '../../../vfs/cluster/meta/session.ts'
import { b, mkfile } from '../conformance-helpers.ts'
import { dropTemplate, newCluster } from './meta-helpers.ts'

t.teardown(dropTemplate)

async function until(what: string, pred: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 25))
  }
}

t.test('sessions are listed, stale ones are cleaned up, closed ones leave', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  // Both beat often; a session is stale after 3 s of silence (the dead one below has been silent 10 s).
  const a = await c.server({ heartbeatMs: 100, staleMs: 3000 })
  const other = await c.server({ heartbeatMs: 100, staleMs: 3000 })
  const listed = await listSessions(a.db)
  t.same(listed.map(s => s.host).sort(), ['test-0', 'test-1'])
  t.same(listed.map(s => s.sid).sort(), [a.vfs.sid, other.vfs.sid].sort())
  t.equal(listed[0]?.pid, process.pid)
  // A server that died: its row stopped beating 10 s ago, with an upload it never attached
  // and a file it removed but never released.
  const dead = 4242n
  const old = Date.now() - 10_000
  // Its row goes in last: the sweep may run at any moment after.
  await a.db.query('INSERT INTO tsnfs_pending_slice (id, sid, size, created) VALUES (999999, $1, 10, $2)', [dead, old])
  const f = await mkfile(a.vfs, a.vfs.root(), 'orphan', 'data')
  await a.db.query('UPDATE tsnfs_node SET nlink = 0 WHERE inode = $1', [f.id])
  await a.db.query('DELETE FROM tsnfs_edge WHERE inode = $1', [f.id])
  await a.db.query('INSERT INTO tsnfs_delfile (inode, size, since) VALUES ($1, 4, $2)', [f.id, old])
  await a.db.query('INSERT INTO tsnfs_session (sid, host, pid, started, heartbeat) VALUES ($1, $2, 1, $3, $3)', [dead, 'dead', old])
  await until('the stale session to go', async () => (await listSessions(a.db)).every(s => s.sid !== dead))
  const count = async (sql: string, p: unknown[]): Promise<number> => Number((await a.db.query(sql, p)).rows[0]?.['n'])
  await until('its pending slice to be reclaimed', async () => await count('SELECT count(*) AS n FROM tsnfs_pending_slice WHERE sid = $1', [dead]) === 0)
  await until('the queued file to be released', async () => await count('SELECT count(*) AS n FROM tsnfs_delfile', []) === 0)
  t.equal(await count('SELECT count(*) AS n FROM tsnfs_node WHERE inode = $1', [f.id]), 0, 'its node row is gone')
  t.equal(await count('SELECT count(*) AS n FROM tsnfs_chunk WHERE inode = $1', [f.id]), 0, 'and its chunks')
  t.equal((await listSessions(a.db)).length, 2, 'the live sessions stay')
  await other.vfs.close()
  t.same((await listSessions(a.db)).map(s => s.sid), [a.vfs.sid], 'close removes the session')
})

t.test('a removed file is released right after the commit', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const { vfs, db } = await c.server()
  const f = await mkfile(vfs, vfs.root(), 'f', 'x'.repeat(1000))
  const n = async (sql: string): Promise<number> => Number((await db.query(sql, [f.id])).rows[0]?.['n'])
  t.equal(await n('SELECT count(*) AS n FROM tsnfs_chunk WHERE inode = $1'), 1, 'the file has a chunk')
  await vfs.remove(vfs.root(), b('f'))
  await until('the release', async () => await n('SELECT count(*) AS n FROM tsnfs_node WHERE inode = $1') === 0)
  t.equal(await n('SELECT count(*) AS n FROM tsnfs_chunk WHERE inode = $1'), 0, 'chunks released')
  t.equal(await n('SELECT count(*) AS n FROM tsnfs_delfile WHERE inode = $1'), 0, 'queue entry gone')
})
