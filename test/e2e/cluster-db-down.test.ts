/*
 * Issue 17 §5: `tsnfs serve` starts while its cluster database is down. The
 * real PostgreSQL (a fresh database) is reached through a TCP relay the test
 * closes and opens (test/helpers/s3-relay.ts relays any TCP service):
 * - the server starts at once; its local export serves at once;
 * - the cluster export answers MNT3ERR_SERVERFAULT to MOUNT and
 *   NFS3ERR_JUKEBOX to NFS requests on the handles clients already hold
 *   (its handle key is in the unreachable database: not BADHANDLE);
 * - once the relay passes again the export serves, without a restart, and
 *   mints the very handle bytes the client held.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Nfs3, S } from '../helpers/local.ts'
import { s3Relay } from '../helpers/s3-relay.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { tempDir } from '../helpers/tsnfs-process.ts'
import { PgDb } from '../../vfs/cluster/clients/pg-db.ts'
import { readHandleKey } from '../../vfs/cluster/init.ts'
import { ROOT_INODE } from '../../vfs/cluster/schema.ts'
import { HandleCodec } from '../../server/nfs3/filehandle.ts'
import { ExportTable } from '../../server/exports/table.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { clusterDbAt, clusterInit, startServers } from './cluster-harness.ts'

const JUKEBOX = 10008
const MNT3ERR_SERVERFAULT = 10006

t.test('serve starts with the cluster database down: local exports serve, the cluster export answers JUKEBOX, then serves without a restart', async (t) => {
  const db = clusterDbAt(t, await testDatabase(t))
  await clusterInit(t, db)
  const pgdb = new PgDb({ url: db.adminUrl })
  const key = await readHandleKey(pgdb).finally(() => pgdb.close())

  const admin = new URL(db.adminUrl)
  const relay = await s3Relay(t, { endpoint: `http://${admin.hostname}:${admin.port === '' ? '5432' : admin.port}`, region: '', accessKey: '', secretKey: '' })
  await relay.set('down')
  const meta = new URL(db.meta)
  meta.hostname = '127.0.0.1'
  meta.port = new URL(relay.target.endpoint).port
  const localDir = t.testdir({ 'hello.txt': 'hi\n' })
  const text = `${localDir} *(rw,insecure,no_root_squash,backend=local)\n` +
    `/shared *(rw,insecure,no_root_squash,backend=cluster,meta=${meta.toString()},data=postgres,credentials=${db.credentials})\n`
  const file = join(tempDir(t, 'tsnfs-clops-exports-'), 'exports')
  writeFileSync(file, text)

  const t0 = Date.now()
  const [s] = await startServers(t, file, 1)
  if (s === undefined) throw new Error('no server')
  t.comment(`serve was up ${Date.now() - t0} ms after the spawn, the database unreachable`)
  await s.waitForLog(/database not reachable/)
  const c = await Nfs3.connect(t, s.port)

  const local = await c.mount(localDir)
  const hello = await c.lookup(local, 'hello.txt')
  t.equal(hello.status, S.OK, 'the local export serves at once')
  t.equal((await c.create(local, 'new')).status, S.OK, 'and takes writes')

  t.equal(await c.mntStatus('/shared'), MNT3ERR_SERVERFAULT, 'MOUNT of the cluster export: SERVERFAULT while its database is unreachable')
  // A handle a client got before the server restarted, made as every server of the cluster makes it.
  const id = new ExportTable(parseExports(text, 'exports')).all().find((e) => e.path === '/shared')?.id
  if (id === undefined) throw new Error('no /shared export')
  const held = new HandleCodec(key).encode(id, { id: ROOT_INODE, gen: 1 })
  t.equal((await c.getattr(held)).status, JUKEBOX, 'GETATTR on a held handle: JUKEBOX, not BADHANDLE')
  t.equal((await c.create(held, 'early')).status, JUKEBOX, 'CREATE: JUKEBOX')
  const forged = Buffer.from(held)
  forged.writeUInt32BE(id + 1, 4)
  t.equal((await c.getattr(forged)).status, S.BADHANDLE, 'a handle of an export the server does not have is still BADHANDLE')

  await relay.set('pass')
  const t1 = Date.now()
  let mnt = MNT3ERR_SERVERFAULT
  while (mnt !== 0 && Date.now() - t1 < 15_000) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    mnt = await c.mntStatus('/shared')
  }
  t.equal(mnt, 0, 'MOUNT succeeds once the database is reachable')
  t.comment(`the cluster export served ${Date.now() - t1} ms after the database became reachable`)
  t.ok((await c.mount('/shared')).equals(held), 'the root handle is the one the client held')
  t.equal((await c.getattr(held)).status, S.OK, 'the held handle serves')
  const made = await c.create(held, 'after')
  t.equal(made.status, S.OK, 'CREATE commits')
  t.equal((await c.lookup(held, 'after')).status, S.OK)
  t.match(s.stderr(), /database reached; serving/, 'the server says so')
  t.ok((await c.mount(localDir)).equals(local), 'the local export kept its handle')
})
