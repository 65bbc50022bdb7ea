/* The ObjectStore contract against every store: the block table (always) and S3 on radosgw (when one is up). */
import t from 'tap'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../../vfs/cluster/clients/pg-store.ts'
import { S3Store } from '../../../../vfs/cluster/clients/s3-store.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { s3Status, testBucket } from '../../../helpers/s3.ts'
import { objectStoreContract } from './object-store-contract.ts'

const PAGE = 7

t.test('pg-store (data=postgres)', async (t) => {
  const db = new PgDb({ url: await testDatabase(t) })
  t.teardown(() => db.close())
  const store = new PgStore(db, { pageSize: PAGE, deleteBatch: 5 })
  await store.init()
  t.equal(store.describe(), 'postgres table tsnfs_block')
  await objectStoreContract(t, store, 'c/', PAGE)
})

const s3 = await s3Status()
t.test('s3-store on radosgw', s3.target === undefined ? { skip: s3.reason } : {}, async (t) => {
  const target = s3.target
  if (target === undefined) return
  // A bucket of its own (emptied and removed at teardown); a prefix inside it proves keys come back without it.
  const bucket = await testBucket(t)
  const store = new S3Store({
    bucket, endpoint: target.endpoint, region: target.region, accessKeyId: target.accessKey, secretAccessKey: target.secretKey,
    prefix: 'fs1/', pageSize: PAGE, deleteBatch: 5,
  })
  t.teardown(() => store.close())
  await store.init()
  t.equal(store.describe(), `s3://${bucket}/fs1/ at ${target.endpoint}`)
  await objectStoreContract(t, store, 'c/', PAGE)
})
