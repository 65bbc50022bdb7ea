/*
 * What escapes a cluster backend from the database or the object store
 * becomes NFS3ERR_JUKEBOX (unreachable: retry later) or NFS3ERR_IO, never
 * SERVERFAULT. The errors are the real ones: a pg connection to a closed
 * port, a backend the database terminates, an SQL error.
 */
import t from 'tap'
import pg from 'pg'
import { clusterError } from '../../server/cluster-errors.ts'
import { toNfsStat } from '../../server/nfs3/status.ts'
import { silentLogger } from '../../server/logger.ts'
import { ObjectMissing, ObjectStoreUnavailable } from '../../vfs/cluster/object-store.ts'
import { VfsError } from '../../vfs/errors.ts'
import { DatabaseUnavailable } from '../../vfs/cluster/clients/pg-db.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { closedPort } from '../helpers/ports.ts'
import { testDatabase } from '../helpers/postgres.ts'

const stat = (err: unknown): number => toNfsStat(clusterError(err), silentLogger)

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

t.test('an unreachable database is JUKEBOX', async (t) => {
  const port = await closedPort()
  const c = new pg.Client({ connectionString: `postgres://u@127.0.0.1:${port}/db`, connectionTimeoutMillis: 2000 })
  const err = await caught(c.connect())
  t.equal(stat(err), nfsstat3.NFS3ERR_JUKEBOX, `pg connect to a closed port: ${(err as Error).message}`)
})

t.test('a connection the database terminates mid-request is JUKEBOX; an SQL error is IO', async (t) => {
  const url = await testDatabase(t)
  const victim = new pg.Client({ connectionString: url })
  victim.on('error', () => undefined)
  await victim.connect()
  const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid
  const killer = new pg.Client({ connectionString: url })
  await killer.connect()
  t.teardown(() => killer.end())
  const slow = caught(victim.query('SELECT pg_sleep(10)'))
  await new Promise((r) => setTimeout(r, 200))
  await killer.query('SELECT pg_terminate_backend($1)', [pid])
  const err = await slow
  t.equal(stat(err), nfsstat3.NFS3ERR_JUKEBOX, `terminated backend: ${(err as Error).message} (${String((err as { code?: unknown }).code)})`)
  const bad = await caught(killer.query('SELECT * FROM no_such_table'))
  t.equal(stat(bad), nfsstat3.NFS3ERR_IO, 'undefined table (42P01) is IO')
  t.match(clusterError(bad), { code: 'EIO', message: /SQLSTATE 42P01/ })
})

t.test('object store errors; errno answers pass through unchanged', async (t) => {
  t.equal(stat(new ObjectStoreUnavailable('s3 at http://127.0.0.1:1 unreachable')), nfsstat3.NFS3ERR_JUKEBOX)
  t.equal(stat(new DatabaseUnavailable('postgres u@127.0.0.1:1/db: unreachable after 3 tries', false)), nfsstat3.NFS3ERR_JUKEBOX, 'PgDb gave up')
  t.equal(stat(new ObjectMissing('chunks/01/1_0_4096')), nfsstat3.NFS3ERR_IO)
  const notFound = new VfsError('ENOENT')
  t.equal(clusterError(notFound), notFound)
  const perm = Object.assign(new Error('EPERM'), { code: 'EPERM' })
  t.equal(clusterError(perm), perm, 'a 5-letter errno is not taken for an SQLSTATE')
  const bug = new TypeError('x is undefined')
  t.equal(clusterError(bug), bug, 'a bug stays a bug (SERVERFAULT, logged)')
})
