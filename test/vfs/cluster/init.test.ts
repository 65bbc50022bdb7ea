/* initCluster is idempotent; servers refuse databases that are not ours; export ids are shared. */
import t from 'tap'
import type { Test } from 'tap'
import { createDatabase } from '../../helpers/postgres.ts'
import { PgDb } from '../../../vfs/cluster/clients/pg-db.ts'
import { checkFormat, ClusterFormatError, initCluster, readDataLocation, readHandleKey, readSmallBlocks } from '../../../vfs/cluster/init.ts'
import { registerExport } from '../../../vfs/cluster/meta/exports.ts'
import { COUNTER, ROOT_INODE, SCHEMA_FORMAT, SETTING } from '../../../vfs/cluster/schema.ts'

async function freshDb(t: Test): Promise<PgDb> {
  const database = await createDatabase()
  const db = new PgDb({ url: database.url, max: 2 })
  t.teardown(async () => {
    await db.close()
    await database.drop()
  })
  return db
}

t.test('init creates settings, counters and the root, and running it again changes nothing', async t => {
  const db = await freshDb(t)
  await t.rejects(checkFormat(db), { name: 'ClusterFormatError', message: /tsnfs cluster init/ }, 'uninitialized: says how to init')
  await initCluster(db, { data: 'postgres' })
  const key = await readHandleKey(db)
  t.equal(key.length, 32)
  t.equal(await readDataLocation(db), 'postgres')
  await initCluster(db, { data: 'postgres', handleKey: Buffer.alloc(32, 7) })
  t.same(await readHandleKey(db), key, 'a second init keeps the first handle key')
  const counters = await db.query('SELECT name, value FROM tsnfs_counter ORDER BY name')
  const byName = new Map(counters.rows.map(r => [r['name'], r['value']]))
  t.equal(byName.get(COUNTER.nextInode), '2')
  t.equal(byName.get(COUNTER.nextSlice), '1')
  const root = await db.query('SELECT mode, uid, gid, nlink, parent, type FROM tsnfs_node WHERE inode = $1', [ROOT_INODE])
  t.same(root.rows, [{ mode: 0o755, uid: '0', gid: '0', nlink: 2, parent: '1', type: 2 }])
  await t.rejects(initCluster(db, { data: 's3://other' }), ClusterFormatError, 'another data location is refused')
  t.equal(byName.get(COUNTER.usedInodes), '1', 'the root is the one node counted')
  // Format 2 (before tsnfs_node.used and the kept inode count) is refused by name, by server and init.
  await db.query('UPDATE tsnfs_setting SET value = $2 WHERE name = $1', [SETTING.format, '2'])
  await t.rejects(checkFormat(db), { message: `the database holds cluster format 2; this tsnfs reads format ${SCHEMA_FORMAT} only` })
  await t.rejects(initCluster(db, { data: 'postgres' }), { message: `database holds cluster format 2; this tsnfs writes format ${SCHEMA_FORMAT}` })
  await db.query('UPDATE tsnfs_setting SET value = $2 WHERE name = $1', [SETTING.format, '99'])
  await t.rejects(checkFormat(db), { message: /format 99/ }, 'another format is refused')
})

t.test('a given handle key is kept', async t => {
  const db = await freshDb(t)
  await initCluster(db, { data: 'postgres', handleKey: Buffer.alloc(32, 9) })
  t.same(await readHandleKey(db), Buffer.alloc(32, 9))
  await t.rejects(initCluster(db, { data: 'postgres', handleKey: Buffer.alloc(5) }), RangeError)
})

t.test('export ids: the same path must have the same id on every server', async t => {
  const db = await freshDb(t)
  await initCluster(db, { data: 'postgres' })
  await registerExport(db, '/a', 5n)
  await registerExport(db, '/a', 5n)
  await registerExport(db, '/b', 6n)
  await t.rejects(registerExport(db, '/a', 6n), { name: 'ClusterFormatError', message: /registered .* with id 5/ })
})

t.test('the small-block threshold is recorded once and read back', async t => {
  const db = await freshDb(t)
  t.equal(await readSmallBlocks(db), 0, 'nothing initialized: none')
  await t.rejects(initCluster(db, { data: 'postgres', smallBlocks: 4096 }), {
    name: 'ClusterFormatError', message: 'small blocks in the database are for data in S3: with data=postgres every block is there already',
  })
  for (const bad of [-1, 1.5, 1024 * 1024 + 1]) {
    await t.rejects(initCluster(db, { data: 's3://b1', smallBlocks: bad }), { name: 'RangeError', message: `small-block threshold ${bad} is not 0..1048576 bytes` })
  }
  await initCluster(db, { data: 's3://b1', smallBlocks: 65536 })
  t.equal(await readSmallBlocks(db), 65536)
  await initCluster(db, { data: 's3://b1' })
  t.equal(await readSmallBlocks(db), 65536, 'init again without a threshold keeps it')
  await initCluster(db, { data: 's3://b1', smallBlocks: 65536 })
  await t.rejects(initCluster(db, { data: 's3://b1', smallBlocks: 4096 }), {
    name: 'ClusterFormatError', message: 'database already keeps blocks of at most 65536 bytes in the database, not 4096: the threshold is fixed at init',
  })
  t.equal(await readSmallBlocks(db), 65536, 'unchanged by the refused init')
  await db.query('UPDATE tsnfs_setting SET value = $2 WHERE name = $1', [SETTING.smallBlocks, 'lots'])
  await t.rejects(readSmallBlocks(db), { name: 'ClusterFormatError', message: `the cluster database's small-block threshold "lots" is not 0..1048576` })
  await db.query('DELETE FROM tsnfs_setting WHERE name = $1', [SETTING.smallBlocks])
  t.equal(await readSmallBlocks(db), 0, 'a database made before the setting: none')

  const other = await freshDb(t)
  await initCluster(other, { data: 's3://b2' })
  t.equal(await readSmallBlocks(other), 0, 'init without a threshold records none')
})
