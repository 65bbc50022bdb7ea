/*
 * The catalog file and the backup lifecycle: schema checks on open (corrupt, foreign, newer),
 * begin/finish/fail/abort, tapes, listing backups, deleting a backup and recycling a tape.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { chainAt } from '../../backup/catalog/chain.ts'
import { restorePlan } from '../../backup/catalog/plan.ts'
import { SCHEMA_VERSION } from '../../backup/catalog/schema.ts'
import { buildChain, NS, sec } from './catalog-fixture.ts'

t.test('a new catalog reopens; bad files give clear errors', async t => {
  const dir = t.testdir({ 'junk.db': 'this is not a database at all'.repeat(200) })
  const file = join(dir, 'cat.db')
  const cat = Catalog.open(file)
  const id = cat.beginBackup({ filesystem: '/data', level: 0, startedNs: sec(10) })
  cat.close()
  const again = Catalog.open(file, { create: false })
  t.equal(again.backup(id).status, 'running')
  t.equal(again.db.pragma('journal_mode', { simple: true }), 'wal')
  again.close()

  t.throws(() => Catalog.open(join(dir, 'junk.db')), { code: 'CATALOG_CORRUPT', message: /junk\.db: not a usable catalog: file is not a database/ })
  t.throws(() => Catalog.open(join(dir, 'none.db'), { create: false }), { code: 'CATALOG_NOT_FOUND', message: /none\.db: cannot open the catalog/ })

  const foreign = new Database(join(dir, 'other.db'))
  foreign.exec('CREATE TABLE t (x)')
  foreign.close()
  t.throws(() => Catalog.open(join(dir, 'other.db')), { code: 'CATALOG_FOREIGN', message: /another program/ })

  const newer = new Database(join(dir, 'newer.db'))
  newer.pragma('application_id = 0x74736e63')
  newer.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
  newer.exec('CREATE TABLE t (x)')
  newer.close()
  t.throws(() => Catalog.open(join(dir, 'newer.db')), { code: 'CATALOG_VERSION', message: /version 2 is newer than this tsnfs knows \(1\)/ })

  // A catalog whose pages were overwritten after its header.
  const broken = join(dir, 'broken.db')
  const c2 = Catalog.open(broken)
  c2.db.pragma('journal_mode = DELETE')
  c2.close()
  const { readFileSync } = await import('node:fs')
  const bytes = readFileSync(broken)
  bytes.fill(0xa5, 100, bytes.length)
  writeFileSync(broken, bytes)
  t.throws(() => Catalog.open(broken), { code: /CATALOG_(CORRUPT|FOREIGN)/ })
})

t.test('lifecycle: begin, tapes, finish, fail, abort, list, delete', async t => {
  const cat = Catalog.open(join(t.testdir(), 'cat.db'))
  t.teardown(() => { cat.close(); })
  const { ids } = buildChain(cat)
  const l0 = cat.backup(ids.l0)
  t.match(l0, { filesystem: '/data', level: 0, full: true, status: 'done', host: 'nas1', agent: 'tsnfs', jobId: 'job-1000', files: 7, baseId: null })
  t.same(l0.tapes, [{ label: 'T0', fileNumber: 1, streamOffset: 0n }])
  t.equal(l0.endedNs, sec(1005))
  t.match(cat.backup(ids.failed), { status: 'failed', message: 'tape drive offline', level: 3 })
  t.match(cat.backup(ids.l2), { full: false, baseId: ids.l1 })

  t.same(cat.listBackups({ filesystem: '/data', level: 1 }).map(b => b.id), [ids.l1, ids.l1b])
  t.same(cat.listBackups({ status: 'failed' }).map(b => b.id), [ids.failed])
  t.same(cat.listBackups({ fromNs: sec(2000), toNs: sec(3200) }).map(b => b.id), [ids.l1, ids.l2, ids.failed])
  t.same(cat.listBackups({ filesystem: 'data/' }).length, 5, 'export paths are normalized')

  const ab = cat.beginBackup({ filesystem: '/data', level: 2, baseId: ids.l1b, startedNs: sec(6000) })
  cat.addTape(ab, { label: 'T9', fileNumber: 3, streamOffset: 0n })
  cat.addTape(ab, { label: 'T10', fileNumber: 1, streamOffset: 1000n })
  t.same(cat.tapes(ab).map(x => x.label), ['T9', 'T10'])
  const ing = cat.ingest(ab)
  const entry = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 1n, atime: { sec: 1, nsec: 0 }, mtime: { sec: 1, nsec: 0 }, ctime: { sec: 1, nsec: 0 }, fileid: 9n }
  ing.add({ ...entry, path: 'p/one', offset: 512n })
  ing.add({ ...entry, path: 'p/two', offset: 4096n, changedDuringBackup: true })
  ing.close()
  cat.abortBackup(ab, sec(6001))
  t.match(cat.backup(ab), { status: 'aborted', message: 'aborted', endedNs: sec(6001) })
  const rows = cat.db.prepare('SELECT name, tape_label, changed FROM files WHERE backup_id = ? ORDER BY name').all(ab)
  t.same(rows, [{ name: 'one', tape_label: 'T9', changed: 0n }, { name: 'two', tape_label: 'T10', changed: 1n }], 'a row is on the tape its offset fell in')
  t.same(chainAt(cat, '/data', sec(7000)).backups.map(b => b.id), [ids.l0, ids.l1b], 'an aborted backup is not in a chain')

  t.throws(() => { cat.finishBackup(ab, { endedNs: 1n, bytes: 1n }); }, { code: 'CATALOG_STATE', message: `backup ${ab} is aborted, not running` })
  t.throws(() => cat.ingest(ids.l0), { code: 'CATALOG_STATE' })
  t.throws(() => cat.backup(999), { code: 'CATALOG_NOT_FOUND', message: 'no backup 999 in the catalog' })
  t.throws(() => cat.beginBackup({ filesystem: '/data', level: 10, startedNs: 1n }), { code: 'CATALOG_BAD_INPUT' })
  t.throws(() => cat.beginBackup({ filesystem: '/data', level: 1, baseId: ids.l2, startedNs: 1n }), { code: 'CATALOG_BAD_INPUT', message: /cannot be the base/ })
  t.throws(() => { cat.addListing(ids.l0, new Map()); }, { code: 'CATALOG_STATE' })

  // Recycling tape T1 removes level 1; the level 2 on it now chains by dump's rule to level 0.
  t.same(cat.deleteByTape('T1'), [ids.l1])
  t.equal(cat.db.prepare('SELECT count(*) FROM files WHERE backup_id = ?').pluck().get(ids.l1), 0n, 'its rows went with it')
  t.equal(cat.db.prepare('SELECT count(*) FROM listings WHERE backup_id = ?').pluck().get(ids.l1), 0n)
  t.same(chainAt(cat, '/data', sec(3100)).backups.map(b => b.id), [ids.l0, ids.l2])
  cat.deleteBackup(ids.l0)
  t.equal(chainAt(cat, '/data', sec(3100)).complete, false, 'without its level 0 the chain is incomplete')
  t.throws(() => restorePlan(cat, '/data', ['/'], sec(3100)), { code: 'CATALOG_STATE', message: /cannot be restored/ })
  t.throws(() => { cat.deleteBackup(ids.l0); }, { code: 'CATALOG_NOT_FOUND' })
  t.equal(NS, 1_000_000_000n)
})
