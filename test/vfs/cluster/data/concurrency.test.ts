/*
 * Two servers writing one file at once: their attach statements meet on the
 * node and chunk rows (one waits for the other's row lock and re-reads the
 * row: READ COMMITTED autocommit; under SERIALIZABLE it would be a retried
 * 40001); every write must land, each exactly once.
 */
import t from 'tap'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { decodeSlices } from '../../../../vfs/cluster/data/slice.ts'
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { fixture, nodeSize } from './setup.ts'

const layout = { chunkSize: 16 * 1024, blockSize: 4096 }

t.test('concurrent FILE_SYNC writes from two servers to one file all land', async (t) => {
  const fx = await fixture(t)
  const a = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 0 })
  const dbB = new PgDb({ url: fx.url, max: 4 })
  t.teardown(() => dbB.close())
  const b = createFileData({ db: dbB, store: fx.store, sid: 2n, ...layout, compactAt: 0 })
  t.teardown(async () => {
    await a.close()
    await b.close()
  })
  const ino = await fx.newFile()
  const n = 24
  const piece = 3000
  await Promise.all(Array.from({ length: n }, (_, i) => {
    const server = i % 2 === 0 ? a : b
    return server.write(ino, BigInt(i * piece), Buffer.alloc(piece, i + 1), 'file_sync', { sec: 1_700_000_000 + i, nsec: 0 })
  }))
  const size = BigInt(n * piece)
  t.equal(await nodeSize(fx.db, ino), size, 'the size is the largest end written')
  const rows = await fx.db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1', [ino])
  const records = rows.rows.reduce((k, r) => k + decodeSlices(r['slices'] as Buffer).length, 0)
  const crossing = Array.from({ length: n }, (_, i) => Math.floor(i * piece / layout.chunkSize) !== Math.floor(((i + 1) * piece - 1) / layout.chunkSize)).filter(Boolean).length
  t.equal(records, n + crossing, 'one record per write and chunk, none doubled by a retry')
  for (const server of [a, b]) {
    server.invalidate(ino)
    const data = await server.read(ino, 0n, n * piece, size)
    const wrong = Array.from({ length: n }, (_, i) => i).filter((i) => !data.subarray(i * piece, (i + 1) * piece).every((x) => x === i + 1))
    t.strictSame(wrong, [], 'every piece reads back')
  }
  t.comment(`serialization retries: ${fx.db.stats().retries + dbB.stats().retries}`)
  await a.flushUsage()
  await b.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [])
})

t.test('an attach that meets a concurrent update of the node waits for it and lands once', async (t) => {
  const fx = await fixture(t)
  const dbB = new PgDb({ url: fx.url, max: 4 })
  t.teardown(() => dbB.close())
  const fd = createFileData({ db: dbB, store: fx.store, sid: 2n, ...layout })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  let locked!: () => void
  let release!: () => void
  const isLocked = new Promise<void>((r) => { locked = r })
  const gate = new Promise<void>((r) => { release = r })
  // Another server's transaction holds the node row until we let it commit.
  const blocker = fx.db.transaction(async (tx) => {
    await tx.query('UPDATE tsnfs_node SET mode = 384 WHERE inode = $1', [ino])
    locked()
    await gate
  })
  await isLocked
  const write = fd.write(ino, 0n, Buffer.alloc(5000, 7), 'file_sync', { sec: 1_700_000_000, nsec: 0 })
  // Wait until the attach is waiting for the row lock.
  for (let i = 0; i < 200; i++) {
    const r = await fx.db.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
    if (Number(r.rows[0]?.['n']) > 0) break
    await new Promise((r) => setTimeout(r, 25))
  }
  release()
  await blocker
  await write
  t.comment(`retries: ${dbB.stats().retries}`)
  const row = await fx.db.query('SELECT mode, size FROM tsnfs_node WHERE inode = $1', [ino])
  t.strictSame(row.rows[0], { mode: 384, size: '5000' }, 'both changes kept')
  const chunk = await fx.db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1', [ino])
  t.equal(decodeSlices(chunk.rows[0]?.['slices'] as Buffer).length, 1, 'one record: the retry did not append twice')
  t.ok((await fd.read(ino, 0n, 5000, 5000n)).every((x) => x === 7))
})
