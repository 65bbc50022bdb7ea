/*
 * Database round trips of the data path through ClusterVfs (SqlDb.stats):
 * an UNSTABLE WRITE costs 0 (staged), COMMIT ≤ 3, a FILE_SYNC WRITE ≤ 3
 * (the pending-slice row, the one-statement attach, the node read again
 * for the reply's attributes). Blocks go to a directory store, so only
 * metadata statements are counted (with data=postgres each block put is one
 * more statement, on the same database).
 */
import t from 'tap'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { initCluster } from '../../../../vfs/cluster/init.ts'
import { openClusterVfs } from '../../../../vfs/cluster/open.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { b, mkfile } from '../../conformance-helpers.ts'
import { DirStore } from './dir-store.ts'

t.test('WRITE and COMMIT round trips', async (t) => {
  const db = new PgDb({ url: await testDatabase(t), max: 4 })
  t.teardown(() => db.close())
  await initCluster(db, { data: 'postgres' })
  const store = new DirStore(t.testdir())
  await store.init()
  const vfs = await openClusterVfs({ db, store, exportPath: '/shared', exportId: 7, host: 'rt', heartbeatMs: 60_000 })
  t.teardown(() => vfs.close())
  const f = await mkfile(vfs, vfs.root(), 'f')
  // Warm-up: the first flush fetches a batch of slice ids (one round trip per 1000 slices).
  await vfs.write(f, 0n, b('warm'), 'file_sync')
  const rows: string[] = []
  const txBefore = db.stats().transactions
  const measure = async (op: string, fn: () => Promise<unknown>): Promise<number> => {
    const before = db.stats().roundTrips
    await fn()
    const n = db.stats().roundTrips - before
    rows.push(`${op}: ${n}`)
    return n
  }
  t.equal(await measure('WRITE unstable', () => vfs.write(f, 0n, b('data'), 'unstable')), 0, 'an UNSTABLE write is staged: 0')
  t.equal(await measure('WRITE unstable (second)', () => vfs.write(f, 4n, b('more'), 'unstable')), 0)
  t.ok(await measure('COMMIT', () => vfs.commit(f, 0n, 0)) <= 3, 'COMMIT ≤ 3')
  t.equal(await measure('COMMIT (nothing staged)', () => vfs.commit(f, 0n, 0)), 0)
  t.ok(await measure('WRITE file_sync', () => vfs.write(f, 8n, b('SYNC'), 'file_sync')) <= 3, 'FILE_SYNC WRITE ≤ 3')
  t.ok(await measure('WRITE data_sync', () => vfs.write(f, 12n, b('DSYN'), 'data_sync')) <= 3, 'DATA_SYNC WRITE ≤ 3')
  t.equal(db.stats().transactions - txBefore, 0, 'no multi-statement transaction on the write path')
  for (const r of rows) t.comment(r)
  t.equal((await vfs.read(f, 0n, 16)).data.toString(), 'datamoreSYNCDSYN', 'every write reads back')
})
