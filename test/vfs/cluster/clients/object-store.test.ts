/* The ObjectStore contract against every store: the block table (always) and S3 on radosgw (when one is up). */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../../vfs/cluster/clients/pg-store.ts'
import { S3Store } from '../../../../vfs/cluster/clients/s3-store.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { objectStoreContract } from './object-store-contract.ts'
import { s3Env } from './s3-env.ts'

const PAGE = 7

t.test('pg-store (data=postgres)', async (t) => {
  const db = new PgDb({ url: await testDatabase(t) })
  t.teardown(() => db.close())
  const store = new PgStore(db, { pageSize: PAGE, deleteBatch: 5 })
  await store.init()
  t.equal(store.describe(), 'postgres table tsnfs_block')
  await objectStoreContract(t, store, 'c/', PAGE)
})

const env = await s3Env()
t.test('s3-store on radosgw', 'skip' in env ? { skip: env.skip } : {}, async (t) => {
  if ('skip' in env) return
  // A bucket of its own, removed at the end; a prefix inside it proves keys come back without it.
  const bucket = `tsnfs-t-${randomBytes(4).toString('hex')}`
  const store = new S3Store({ ...env, bucket, prefix: 'fs1/', pageSize: PAGE, deleteBatch: 5 })
  t.teardown(async () => {
    const left: string[] = []
    for await (const o of store.list('')) left.push(o.key)
    await store.delete(left)
    await store.close()
    // Emptied, the bucket may go.
    const s3 = new S3Client({ endpoint: env.endpoint, region: env.region, forcePathStyle: true, credentials: env })
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }))
    s3.destroy()
  })
  await store.init()
  t.equal(store.describe(), `s3://${bucket}/fs1/ at ${env.endpoint}`)
  await objectStoreContract(t, store, 'c/', PAGE)
})
