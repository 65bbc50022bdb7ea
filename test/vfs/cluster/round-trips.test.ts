/*
 * Database round trips per operation (SqlDb.stats), the numbers that bound
 * one database node's throughput (issue 17 §6: GETATTR from a validated
 * cache 0, LOOKUP ≤ 1, CREATE ≤ 2). The table is printed and copied into
 * the README.
 */
import t from 'tap'
import { b, mkdir, mkfile, OWNER } from '../conformance-helpers.ts'
import { newCluster, dropTemplate } from './meta-helpers.ts'

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
  const rows: [string, number][] = []
  const measure = async (op: string, fn: () => Promise<unknown>): Promise<number> => {
    const before = db.stats().roundTrips
    await fn()
    const n = db.stats().roundTrips - before
    rows.push([op, n])
    return n
  }
  const f = await mkfile(vfs, d, 'f')
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
  await measure('READDIR (cached dir, one page)', () => vfs.readdir(d, 0n, 100))
  t.equal(await measure('SETATTR mode', () => vfs.setattr(f, { mode: 0o640 })), 1, 'SETATTR without a size: one statement')
  await measure('SETATTR size', () => vfs.setattr(f, { size: 0n }))
  await measure('WRITE unstable', () => vfs.write(f, 0n, b('data'), 'unstable'))
  await measure('COMMIT', () => vfs.commit(f, 0n, 0))
  await measure('WRITE file_sync', () => vfs.write(f, 0n, b('DATA'), 'file_sync'))
  await measure('READ (cached attrs)', () => vfs.read(f, 0n, 4))
  await measure('LINK', () => vfs.link(f, d, b('f2')))
  await measure('RENAME (same dir)', () => vfs.rename(d, b('f2'), d, b('f3')))
  await measure('RENAME (dir across parents)', () => vfs.rename(d, b('sub'), root, b('sub')))
  await measure('REMOVE', () => vfs.remove(d, b('f3')))
  await measure('RMDIR', () => vfs.rmdir(root, b('sub')))
  await measure('FSSTAT', () => vfs.fsstat(root))
  t.comment('| operation | round trips |')
  t.comment('|---|---|')
  for (const [op, n] of rows) t.comment(`| ${op} | ${n} |`)
})
