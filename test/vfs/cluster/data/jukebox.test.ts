/*
 * The object store unreachable under a running server (issue 17 §5): READ,
 * WRITE FILE_SYNC and COMMIT answer NFS3ERR_JUKEBOX (RFC 1813 §2.6, "retry
 * later"), not NFS3ERR_IO, and nothing is acknowledged that is not stored;
 * once the store is back, the retried requests land and read back whole.
 * The gateway is radosgw behind a relay the test cuts (test/helpers/s3-relay.ts).
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../../../helpers/local.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { s3Status, testBucket } from '../../../helpers/s3.ts'
import { s3Relay } from '../../../helpers/s3-relay.ts'
import { startServer } from '../../../helpers/server.ts'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { initCluster } from '../../../../vfs/cluster/init.ts'

const JUKEBOX = 10008

const status = await s3Status()
t.test('store cut: JUKEBOX for READ, WRITE FILE_SYNC and COMMIT; after it is back the retries land', status.target === undefined ? { skip: status.reason } : {}, async (t) => {
  if (status.target === undefined) return
  const relay = await s3Relay(t, status.target)
  const bucket = await testBucket(t, { create: true })
  const url = new URL(await testDatabase(t))
  const password = decodeURIComponent(url.password)
  url.password = ''
  const cred = join(t.testdir(), 'cluster.cred')
  writeFileSync(cred, `meta_password=${password}\ns3_access_key=${relay.target.accessKey}\ns3_secret_key=${relay.target.secretKey}\n`, { mode: 0o600 })
  const data = `s3://${bucket}?endpoint=${relay.target.endpoint}&region=${relay.target.region}&path_style=1`
  const admin = new PgDb({ url: url.toString(), password })
  await initCluster(admin, { data })
  await admin.close()
  const srv = await startServer(t, `/shared *(rw,insecure,no_root_squash,backend=cluster,meta=${url.toString()},data=${data},credentials=${cred})\n`)
  const nfs = await Nfs3.connect(t, srv.port)
  const root = await nfs.mount('/shared')

  const old = await nfs.create(root, 'old')
  const oldFh = old.fh ?? Buffer.alloc(0)
  const oldData = Buffer.alloc(50_000, 7)
  t.equal((await nfs.write(oldFh, 0n, oldData, FILE_SYNC)).status, S.OK, 'written while the store is up')
  const c = await nfs.create(root, 'new')
  const fh = c.fh ?? Buffer.alloc(0)

  await relay.set('down')
  const r = await nfs.read(oldFh, 0n, 50_000)
  t.equal(r.status, JUKEBOX, 'READ of blocks never cached: JUKEBOX')
  const w = await nfs.write(fh, 0n, Buffer.alloc(10_000, 1), FILE_SYNC)
  t.equal(w.status, JUKEBOX, 'WRITE FILE_SYNC: JUKEBOX, not acknowledged')
  t.equal((await nfs.write(fh, 10_000n, Buffer.alloc(5_000, 2), UNSTABLE)).status, S.OK, 'WRITE UNSTABLE is staged (RFC 1813 §3.3.7 allows losing it)')
  t.equal((await nfs.commit(fh)).status, JUKEBOX, 'COMMIT: JUKEBOX, the data is not stable')
  t.equal((await nfs.getattr(fh)).status, S.OK, 'metadata still answers')

  await relay.set('pass')
  // The client retries what JUKEBOX refused: the same write, then the COMMIT.
  t.equal((await nfs.write(fh, 0n, Buffer.alloc(10_000, 1), FILE_SYNC)).status, S.OK, 'the retried FILE_SYNC write lands')
  t.equal((await nfs.commit(fh)).status, S.OK, 'the retried COMMIT lands')
  const back = await nfs.read(fh, 0n, 20_000)
  t.equal(back.status, S.OK)
  t.ok(back.data?.equals(Buffer.concat([Buffer.alloc(10_000, 1), Buffer.alloc(5_000, 2)])), 'both writes read back')
  const again = await nfs.read(oldFh, 0n, 50_000)
  t.ok(again.status === S.OK && again.data?.equals(oldData), 'the old file reads whole')
})
