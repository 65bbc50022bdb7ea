/*
 * Small blocks in the database, the rest in the bucket (vfs/cluster/tiered-store.ts):
 * each key goes to the one store its length names, listings merge in byte order
 * across both, deletes reach both; then the ObjectStore contract on the pair.
 * Two block tables in two databases stand in for "database" and "bucket" so the
 * routing is checked without a gateway; with radosgw up, the real pair runs too.
 */
import t from 'tap'
import type { Test } from 'tap'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../../vfs/cluster/clients/pg-store.ts'
import { S3Store } from '../../../../vfs/cluster/clients/s3-store.ts'
import { blockKey } from '../../../../vfs/cluster/data/keys.ts'
import { ObjectMissing, type ObjectInfo, type ObjectStore } from '../../../../vfs/cluster/object-store.ts'
import { MAX_SMALL_BLOCK, TieredStore } from '../../../../vfs/cluster/tiered-store.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { s3Status, testBucket } from '../../../helpers/s3.ts'
import { objectStoreContract } from './object-store-contract.ts'

const PAGE = 3
const MAX = 65536

async function blockTable(t: Test): Promise<PgStore> {
  const db = new PgDb({ url: await testDatabase(t), max: 2 })
  t.teardown(() => db.close())
  return new PgStore(db, { pageSize: PAGE, deleteBatch: 2 })
}

async function keysOf(store: ObjectStore, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for await (const o of store.list(prefix)) out.push(o.key)
  return out
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

async function routing(t: Test, small: ObjectStore, large: ObjectStore): Promise<void> {
  const tiered = new TieredStore({ small, large, maxSmall: MAX })
  await tiered.init()
  // Lengths at and around the threshold, ids spread over several two-digit prefixes.
  const blocks: [string, number, boolean][] = [
    [blockKey(5n, 0, 7), 7, true],
    [blockKey(5n, 1, MAX), MAX, true],
    [blockKey(261n, 0, MAX + 1), MAX + 1, false],
    // 517 shares 5's prefix: in byte order "517_" comes before "5_0" ('1' < '_'), in a locale's after.
    [blockKey(517n, 0, MAX + 2), MAX + 2, false],
    [blockKey(6n, 0, 4 * 1024 * 1024), 4 * 1024 * 1024, false],
    [blockKey(10n, 0, 1), 1, true],
    [blockKey(10n, 1, 0), 0, true],
    [blockKey(300n, 2, 200_000), 200_000, false],
    [blockKey(12n, 0, 100), 100, true],
  ]
  for (const [key, len] of blocks) await tiered.put(key, Buffer.alloc(len, key.length & 0xff))
  await tiered.put('chunks/zz-not-a-block', Buffer.from('x'))
  await tiered.put('other/thing', Buffer.from('y'))

  for (const [key, len, isSmall] of blocks) {
    const home = isSmall ? small : large
    const away = isSmall ? large : small
    t.equal(tiered.storeOf(key), home, `${key}: ${isSmall ? 'the database' : 'the bucket'}`)
    t.equal((await home.get(key, 0, len)).length, len, `${key} is in its store`)
    await t.rejects(away.get(key, 0, 1), ObjectMissing, `${key} is not in the other`)
    t.same(await tiered.get(key, 0, len), Buffer.alloc(len, key.length & 0xff), `${key} reads back through the pair`)
  }
  t.equal(tiered.storeOf('chunks/zz-not-a-block'), large, 'a key outside the block layout: the bucket')
  t.same(await keysOf(small), blocks.filter((b) => b[2]).map((b) => b[0]).sort(byteOrder), 'the database holds exactly the small blocks')

  const expected = [...blocks.map((b) => b[0]), 'chunks/zz-not-a-block', 'other/thing'].sort(byteOrder)
  t.same(await keysOf(tiered), expected, 'one listing, in byte order, across page edges of both')
  t.same(await keysOf(tiered, 'chunks/0'), expected.filter((k) => k.startsWith('chunks/0')), 'by prefix')
  const sizes = new Map<string, number>()
  for await (const o of tiered.list('chunks/')) sizes.set(o.key, o.size)
  for (const [key, len] of blocks) t.equal(sizes.get(key), len, `${key}: its size in the listing`)

  // A caller that stops early: the listing ends, and a new one starts from the top.
  const first: ObjectInfo[] = []
  for await (const o of tiered.list('')) {
    first.push(o)
    if (first.length === 2) break
  }
  t.same(first.map((o) => o.key), expected.slice(0, 2), 'stopped after two')

  await tiered.delete([blocks[0]?.[0] ?? '', blocks[2]?.[0] ?? '', 'other/thing', 'chunks/00/never_0_1'])
  t.same(await keysOf(tiered), expected.filter((k) => k !== blocks[0]?.[0] && k !== blocks[2]?.[0] && k !== 'other/thing'), 'one delete reached both stores')
  await tiered.delete([])
}

t.test('routing by the length in the key (two block tables)', async (t) => {
  await routing(t, await blockTable(t), await blockTable(t))
})

t.test('the threshold is checked; describe names both', async (t) => {
  const a = await blockTable(t)
  const b = await blockTable(t)
  for (const bad of [0, -1, 1.5, MAX_SMALL_BLOCK + 1, Number.NaN]) {
    t.throws(() => new TieredStore({ small: a, large: b, maxSmall: bad }), { name: 'RangeError', message: `small-block threshold ${bad} is not 1..${MAX_SMALL_BLOCK} bytes` })
  }
  t.equal(new TieredStore({ small: a, large: b, maxSmall: 4096 }).describe(), 'postgres table tsnfs_block, blocks of at most 4096 bytes in postgres table tsnfs_block')
})

t.test('the ObjectStore contract on the pair', async (t) => {
  const tiered = new TieredStore({ small: await blockTable(t), large: await blockTable(t), maxSmall: MAX })
  await tiered.init()
  await objectStoreContract(t, tiered, 'c/', PAGE)
})

const s3 = await s3Status()
t.test('the database and radosgw', s3.target === undefined ? { skip: s3.reason } : {}, async (t) => {
  const target = s3.target
  if (target === undefined) return
  const bucket = await testBucket(t)
  const open = (prefix: string): S3Store => {
    const store = new S3Store({ bucket, endpoint: target.endpoint, region: target.region, accessKeyId: target.accessKey, secretAccessKey: target.secretKey, prefix, pageSize: PAGE, deleteBatch: 2 })
    t.teardown(() => store.close())
    return store
  }
  await t.test('routing', async (t) => {
    await routing(t, await blockTable(t), open('r/'))
  })
  await t.test('contract', async (t) => {
    const tiered = new TieredStore({ small: await blockTable(t), large: open('c/'), maxSmall: MAX })
    await tiered.init()
    t.match(tiered.describe(), new RegExp(`^s3://${bucket}/c/ at .*, blocks of at most 65536 bytes in postgres table tsnfs_block$`))
    await objectStoreContract(t, tiered, 'k/', PAGE)
  })
})
