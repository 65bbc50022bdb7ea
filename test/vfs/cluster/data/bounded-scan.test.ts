/*
 * gc and fsck in bounded memory: gc settles the streamed listing a batch at
 * a time (here 7 keys per query, over a listing of more than 100 keys);
 * fsck split into passes by key prefix (maxSlices 4: 8 passes) finds
 * exactly what one pass finds, each problem once.
 */
import t from 'tap'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences, type FsckReport } from '../../../../vfs/cluster/data/fsck.ts'
import { collectGarbage } from '../../../../vfs/cluster/data/gc.ts'
import { blockKey } from '../../../../vfs/cluster/data/keys.ts'
import { fixture } from './setup.ts'

const now = { sec: 1_700_000_000, nsec: 0 }
const layout = { chunkSize: 16 * 1024, blockSize: 1024 }

const kinds = (r: FsckReport): string[] => r.problems.map((p) => `${p.kind} ${p.message}`).sort()

t.test('gc over a listing of many pages, fsck in passes: same answers as whole', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 0 })
  t.teardown(() => fd.close())
  const files: bigint[] = []
  for (let i = 0; i < 30; i++) {
    const ino = await fx.newFile()
    files.push(ino)
    await fd.write(ino, 0n, Buffer.alloc(2500 + i, i), 'file_sync', now)
  }
  await fd.flushUsage()
  const orphans: string[] = []
  for (let i = 0; i < 25; i++) {
    const key = blockKey(500_000n + BigInt(i * 37), 0, 5)
    orphans.push(key)
    await fx.store.put(key, Buffer.from('12345'))
  }
  const clean = await checkReferences(fx.db, fx.store, layout)
  t.equal(clean.passes, 1)
  t.equal(kinds(clean).filter((k) => k.startsWith('orphan')).length, 25, 'one pass sees the 25 orphans')
  const split = await checkReferences(fx.db, fx.store, { ...layout, maxSlices: 4 })
  t.equal(split.passes, 8, '30 slices at 4 per pass: 8 passes (a power of two)')
  t.strictSame(kinds(split), kinds(clean), 'the passes find the same problems, each once')
  t.strictSame([split.chunks, split.slices, split.objects], [clean.chunks, clean.slices, clean.objects], 'and count the same')

  const gc = await collectGarbage(fx.db, fx.store, { minAgeMs: 0, blockSize: layout.blockSize, batch: 7 })
  t.equal(gc.scanned, clean.objects, `every key listed (${gc.scanned}, settled 7 at a time)`)
  t.ok(gc.scanned > 100, 'more than 14 batches')
  t.equal(gc.orphans, 25, 'every orphan found across batches')
  t.strictSame((await checkReferences(fx.db, fx.store, { ...layout, maxSlices: 4 })).problems, [], 'clean after gc')

  // Damage: a block missing, a wrong count, a foreign key.
  const f0 = files[0] ?? 0n
  const r = await fx.db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1', [f0])
  t.equal(r.rowCount, 1)
  const sliceIds = (await fx.db.query('SELECT id, size FROM tsnfs_slice_ref ORDER BY id')).rows
  const first = sliceIds[0]
  const second = sliceIds[1]
  if (first === undefined || second === undefined) throw new Error('slices expected')
  await fx.store.delete([blockKey(BigInt(first['id'] as string), 1, 1024)])
  await fx.db.query('UPDATE tsnfs_slice_ref SET refs = 2 WHERE id = $1', [second['id']])
  await fx.store.put('chunks/zz/stray', Buffer.from('?'))
  const whole = await checkReferences(fx.db, fx.store, layout)
  const parts = await checkReferences(fx.db, fx.store, { ...layout, maxSlices: 4 })
  t.strictSame(whole.problems.map((p) => p.kind).sort(), ['foreign', 'missing-block', 'refs-mismatch'])
  t.strictSame(kinds(parts), kinds(whole), 'the passes agree on the damage')
  const capped = await checkReferences(fx.db, fx.store, { ...layout, maxProblems: 1 })
  t.strictSame([capped.problems.length, capped.unlisted], [1, 2], 'problems past maxProblems are counted, not held')
})
