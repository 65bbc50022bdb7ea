/*
 * Database round trips per operation (SqlDb.stats), the numbers that bound
 * one database node's throughput (issue 17 §6: GETATTR from a validated
 * cache 0, LOOKUP ≤ 1, CREATE ≤ 2; and, since session 29, LINK, RENAME and
 * RMDIR ≤ 3, GETATTR of a node this server just changed 0). The table is
 * printed and copied into bench/README.md.
 */
import t from 'tap'
import { b, mkdir, mkfile, OWNER } from '../conformance-helpers.ts'
import { newCluster, dropTemplate, roundTripMeter } from './meta-helpers.ts'

t.teardown(dropTemplate)

t.test('round trips per operation', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  let remote = 0
  const { vfs, db } = await c.server({ onRemoteChange: () => { remote++ } })
  /** Wait until another server's next change has been delivered here. */
  const delivered = async (change: () => Promise<unknown>): Promise<void> => {
    const seen = remote
    await change()
    for (let i = 0; i < 500 && remote === seen; i++) await new Promise(r => setTimeout(r, 10))
  }
  const other = (await c.server()).vfs
  const root = vfs.root()
  // Warm-up: the first create fetches a batch of inode ids (one round trip per 1000 creates).
  await mkfile(vfs, root, 'warm')
  const d = await mkdir(vfs, root, 'd')
  const { rows, measure } = roundTripMeter(vfs, db)
  const f = await mkfile(vfs, d, 'f')
  const made = await vfs.create(d, b('fresh'), { how: 'guarded', attr: {} }, OWNER)
  t.equal(await measure('GETATTR (just created here)', () => vfs.getattr(made.ref)), 0,
    'GETATTR of a node this server just created: 0 (cached from the create\'s own reply)')
  t.equal(await measure('GETATTR (directory just changed here)', () => vfs.getattr(d)), 0)
  t.equal(await measure('GETATTR (cached)', () => vfs.getattr(f)), 0, 'GETATTR from a validated cache: 0')
  // Another server changes f: our copy is dropped when its notification arrives.
  await delivered(() => other.setattr(f, { mode: 0o600 }))
  t.equal(await measure('GETATTR (uncached)', () => vfs.getattr(f)), 1)
  t.equal(await measure('LOOKUP (cached)', () => vfs.lookup(d, b('f'))), 0)
  await delivered(() => other.create(d, b('g'), { how: 'guarded', attr: {} }, OWNER))
  t.ok(await measure('LOOKUP (uncached)', () => vfs.lookup(d, b('g'))) <= 1, 'LOOKUP ≤ 1')
  t.equal(await measure('LOOKUP ENOENT', () => vfs.lookup(d, b('none')).catch(() => null)), 1)
  t.ok(await measure('CREATE', () => vfs.create(d, b('new'), { how: 'guarded', attr: {} }, OWNER)) <= 2, 'CREATE ≤ 2')
  t.ok(await measure('MKDIR', () => vfs.mkdir(d, b('sub'), {}, OWNER)) <= 2)
  t.ok(await measure('SYMLINK', () => vfs.symlink(d, b('l'), b('new'), {}, OWNER)) <= 2)
  t.ok(await measure('MKNOD', () => vfs.mknod(d, b('p'), 'fifo', { major: 0, minor: 0 }, {}, OWNER)) <= 2)
  const l = (await vfs.lookup(d, b('l'))).ref
  t.equal(await measure('READLINK', () => vfs.readlink(l)), 1)
  // Another server changes d: our copy of it is dropped, and its row comes with the page.
  await delivered(() => other.setattr(d, { mode: 0o755 }))
  t.equal(await measure('READDIR (uncached dir, one page)', () => vfs.readdir(d, 0n, 100)), 1, 'READDIR of an uncached directory: its row and the page in one query')
  await measure('READDIR (cached dir, one page)', () => vfs.readdir(d, 0n, 100))
  t.equal(await measure('SETATTR mode', () => vfs.setattr(f, { mode: 0o640 })), 1, 'SETATTR without a size: one statement')
  await measure('SETATTR size', () => vfs.setattr(f, { size: 0n }))
  await measure('WRITE unstable', () => vfs.write(f, 0n, b('data'), 'unstable'))
  await measure('COMMIT', () => vfs.commit(f, 0n, 0))
  await measure('WRITE file_sync', () => vfs.write(f, 0n, b('DATA'), 'file_sync'))
  await measure('READ (cached attrs)', () => vfs.read(f, 0n, 4))
  t.ok(await measure('LINK', () => vfs.link(f, d, b('f2'))) <= 3, 'LINK ≤ 3')
  t.equal(await measure('GETATTR after LINK', () => vfs.getattr(f)), 0)
  t.ok(await measure('RENAME (same dir)', () => vfs.rename(d, b('f2'), d, b('f3'))) <= 3, 'RENAME ≤ 3')
  t.ok(await measure('RENAME (file over file)', () => vfs.rename(d, b('f3'), d, b('new'))) <= 3, 'RENAME over a file ≤ 3')
  t.ok(await measure('RENAME (dir across parents)', () => vfs.rename(d, b('sub'), root, b('sub'))) <= 3, 'RENAME of a directory ≤ 3')
  t.equal(await measure('LOOKUP after RENAME', () => vfs.lookup(root, b('sub'))), 0, 'the new name is cached from the rename')
  await vfs.releasesDone()
  t.equal(await measure('REMOVE (reply)', () => vfs.remove(d, b('p'))), 1, 'REMOVE: one statement before the reply')
  await vfs.releasesDone()
  t.ok(await measure('RMDIR', () => vfs.rmdir(root, b('sub'))) <= 3, 'RMDIR ≤ 3')
  // REMOVE with the release after it (chunks, delfile row, node row), per file, in a burst of 64.
  const burst = 64
  for (let i = 0; i < burst; i++) await mkfile(vfs, d, `r${i}`)
  await vfs.flushCounters()
  const rt0 = db.stats().roundTrips
  await Promise.all(Array.from({ length: burst }, (_, i) => vfs.remove(d, b(`r${i}`))))
  await vfs.releasesDone()
  const perRemove = (db.stats().roundTrips - rt0) / burst
  rows.push(['REMOVE with its release, per file (burst of 64)', perRemove])
  t.ok(perRemove <= 2.5, `REMOVE and its release: ${perRemove} round trips per file (was 6: the release was a transaction per file)`)
  await measure('FSSTAT', () => vfs.fsstat(root))
  t.comment('| operation | round trips |')
  t.comment('|---|---|')
  for (const [op, n] of rows) t.comment(`| ${op} | ${n} |`)
})
