/*
 * Writes that cannot complete: the store refuses puts, or the file is
 * removed while its data is uploaded. Nothing half-done stays behind.
 */
import t from 'tap'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { fixture } from './setup.ts'

const now = { sec: 1_700_000_000, nsec: 5 }
const small = { chunkSize: 64 * 1024, blockSize: 16 * 1024 }

t.test('a flush that cannot reach the store fails with EAGAIN (JUKEBOX) and keeps the bytes for the next COMMIT', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.from('abcdef'), 'unstable', now)
  fx.store.refusePuts = true
  await t.rejects(fd.flush(ino), { code: 'EAGAIN' })
  await t.rejects(fd.write(ino, 2n, Buffer.from('XY'), 'file_sync', now), { code: 'EAGAIN' }, 'a stable write fails too')
  t.strictSame(fd.staged(ino)?.size, 6n, 'still staged')
  t.equal((await fd.read(ino, 0n, 6, 6n)).toString(), 'abXYef', 'newer bytes on top of the restored ones')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_chunk')).rowCount, 0, 'nothing attached')
  fx.store.refusePuts = false
  await fd.flush(ino)
  t.equal(fd.staged(ino), undefined)
  fd.invalidate(ino)
  t.equal((await fd.read(ino, 0n, 6, 6n)).toString(), 'abXYef')
  await fd.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, small)).problems, [], 'the failed attempts left no pending rows or blocks')
})

t.test('a write to a file removed meanwhile is ESTALE and its uploads are taken back', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.alloc(100, 1), 'unstable', now)
  await fx.db.query('DELETE FROM tsnfs_node WHERE inode = $1', [ino])
  // Uncounted as a release uncounts it (meta/delfile.ts), so fsck's inode count agrees below.
  await fx.db.query("UPDATE tsnfs_counter SET value = value - 1 WHERE name = 'used_inodes'")
  await t.rejects(fd.write(ino, 100n, Buffer.alloc(20_000, 2), 'file_sync', now), { code: 'ESTALE' })
  t.equal(fd.staged(ino), undefined, 'nothing kept for a file that is gone')
  await fd.idle()
  t.equal((await fx.db.query('SELECT * FROM tsnfs_pending_slice')).rowCount, 0)
  const left: string[] = []
  for await (const o of fx.store.list('chunks/')) left.push(o.key)
  t.strictSame(left, [], 'its blocks are deleted')
  await fd.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, small)).problems, [])
})
