/*
 * Every catalog query against one ingested chain (levels 0, 1, 2, a failed 3 and a later 1 with
 * creates, edits, renames and deletions; see catalog-fixture.ts), at dates on and between backups.
 */
import t from 'tap'
import { join } from 'node:path'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { chainAt } from '../../backup/catalog/chain.ts'
import { restorePlan } from '../../backup/catalog/plan.ts'
import { backupsContaining, dirAt, findFiles, newestBefore } from '../../backup/catalog/queries.ts'
import { buildChain, sec } from './catalog-fixture.ts'

const dir = t.testdir()
const cat = Catalog.open(join(dir, 'cat.db'))
t.teardown(() => { cat.close(); })
const { ids } = buildChain(cat)

const names = (d: string, at: number): string[] => dirAt(cat, '/data', d, sec(at)).entries.map(e => e.name).sort()

t.test('the chain in force at each date follows dump\'s rule', async t => {
  const chain = (at: number): number[] => chainAt(cat, '/data', sec(at)).backups.map(b => b.id)
  t.same(chain(999), [])
  t.same(chain(1000), [ids.l0], 'a backup counts from its start')
  t.same(chain(1500), [ids.l0])
  t.same(chain(2500), [ids.l0, ids.l1])
  t.same(chain(3100), [ids.l0, ids.l1, ids.l2])
  t.same(chain(3300), [ids.l0, ids.l1, ids.l2], 'the failed level 3 is never in a chain')
  t.same(chain(5000), [ids.l0, ids.l1b], 'a later level 1 supersedes the 1 and 2 before it')
  t.equal(chainAt(cat, '/data', sec(5000)).complete, true)
  t.same(chainAt(cat, '/other', sec(5000)).backups, [])
})

t.test('what a directory held at a date', async t => {
  t.same(names('/', 1500), ['a', 'b', 'top.txt'])
  t.same(names('/a', 1500), ['x.txt', 'y.txt'])
  t.same(names('/a', 2500), ['x.txt'], 'deleted by level 1')
  t.same(names('/b', 2500), ['new.log', 'old.log'])
  t.same(names('/b', 3100), ['renamed.log'], 'renamed and deleted by level 2')
  t.same(names('/', 3100), ['a', 'b', 'c', 'top.txt'])
  t.same(names('/c', 3100), ['z.bin'])
  t.same(names('/', 4500), ['a', 'b', 'top.txt'], '/c removed before the later level 1')
  // Each name at its newest version in the chain: x.txt from level 1, top.txt still from level 0 at 2500.
  const a = dirAt(cat, '/data', '/a', sec(2500)).entries.find(e => e.name === 'x.txt')
  t.equal(a?.version?.backupId, ids.l1)
  t.equal(a?.version?.size, 11n)
  const top = dirAt(cat, '/data', '/', sec(2500)).entries.find(e => e.name === 'top.txt')
  t.equal(top?.version?.backupId, ids.l0)
  t.equal(top?.version?.sha256, 'sha-top-v1')
  const top2 = dirAt(cat, '/data', '/', sec(3100)).entries.find(e => e.name === 'top.txt')
  t.equal(top2?.version?.sha256, 'sha-top-v2')
  t.equal(top2?.version?.mtimeNs, sec(2500) + 5n, 'nanoseconds kept')
  t.throws(() => dirAt(cat, '/data', '/c', sec(4500)), { code: 'CATALOG_NOT_FOUND', message: /\/c: no such directory/ })
  t.throws(() => dirAt(cat, '/data', '/top.txt', sec(4500)), { code: 'CATALOG_NOT_FOUND', message: '/top.txt: not a directory' })
  t.throws(() => dirAt(cat, '/data', '/', sec(10)), { code: 'CATALOG_NOT_FOUND', message: /no completed backup of \/data/ })
  t.throws(() => dirAt(cat, '/data', '/a/../b', sec(4500)), { code: 'CATALOG_BAD_INPUT' })
})

t.test('which backups contain a path', async t => {
  const x = backupsContaining(cat, '/data', '/a/x.txt')
  t.same(x.map(v => [v.backupId, v.level, v.size]), [[ids.l0, 0, 4n], [ids.l1, 1, 11n], [ids.l1b, 1, 11n]])
  t.same(x.map(v => v.sha256), ['sha-x-v1', 'sha-x-v2-longer', 'sha-x-v2-longer'])
  t.equal(x[0]?.tapeLabel, 'T0')
  t.equal(x[0]?.tapeFile, 1)
  t.same(backupsContaining(cat, '/data', 'c/z.bin').map(v => v.backupId), [ids.l2], 'relative paths are from the root')
  t.same(backupsContaining(cat, '/data', '/nope'), [])
})

t.test('newest version before a date', async t => {
  t.equal(newestBefore(cat, '/data', '/a/x.txt', sec(1999))?.sha256, 'sha-x-v1')
  t.equal(newestBefore(cat, '/data', '/a/x.txt', sec(2000))?.sha256, 'sha-x-v2-longer')
  t.equal(newestBefore(cat, '/data', '/a/y.txt', sec(9999))?.backupId, ids.l0, 'a deleted file keeps its last version')
  t.equal(newestBefore(cat, '/data', '/a/x.txt', sec(999)), undefined)
})

t.test('find by name pattern', async t => {
  const paths = (p: string, o: Parameters<typeof findFiles>[3] = {}): string[] => [...new Set(findFiles(cat, '/data', p, o).map(v => v.path))]
  t.same(paths('*.log'), ['/b/new.log', '/b/old.log', '/b/renamed.log'])
  t.same(paths('*.log', { beforeNs: sec(1500) }), ['/b/old.log'])
  t.same(paths('?.txt'), ['/a/x.txt', '/a/y.txt'])
  t.same(paths('*', { under: '/c' }), ['/c/z.bin'])
  t.same(paths('*.txt', { under: '/' }), ['/a/x.txt', '/a/y.txt', '/top.txt'], 'sorted by path')
  t.same(paths('a/*.txt'), ['/a/x.txt', '/a/y.txt'], 'a pattern with / matches the path')
  t.same(paths('/top*'), ['/top.txt'])
  t.same(paths('[xy].txt', { under: '/a' }), ['/a/x.txt', '/a/y.txt'])
  t.same(paths('*.TXT'), [], 'case matters')
  t.equal(findFiles(cat, '/data', '*', { limit: 2 }).length, 2)
  t.throws(() => findFiles(cat, '/data', ''), { code: 'CATALOG_BAD_INPUT' })
})

t.test('restore plans', async t => {
  const one = restorePlan(cat, '/data', ['/a/x.txt'], sec(2500))
  t.equal(one.full, false)
  t.same(one.steps.map(s => s.backup.id), [ids.l1], 'one file: only the backup holding its version')
  const f = one.steps[0]?.files[0]
  t.equal(f?.path, '/a/x.txt')
  t.equal(f?.tapeLabel, 'T1')
  t.ok(f !== undefined && f.endOffset !== null && f.endOffset > f.streamOffset, 'where its records end')

  const tree = restorePlan(cat, '/data', ['/b', 'a'], sec(3100))
  // Directories are in every level (dump writes them to place what changed); x.txt last changed in level 1.
  t.same(tree.steps.map(s => [s.backup.id, s.files.map(x => x.path)]), [[ids.l1, ['/a/x.txt']], [ids.l2, ['/a', '/b', '/b/renamed.log']]],
    'renamed name once, deleted names gone, each from the backup of its newest version')
  t.same(tree.missing, [])
  for (const s of tree.steps) {
    const offs = s.files.map(x => x.streamOffset)
    t.same(offs, [...offs].sort((a, b) => (a < b ? -1 : 1)), 'sorted by offset')
  }

  const full = restorePlan(cat, '/data', ['/'], sec(3100))
  t.equal(full.full, true)
  t.same(full.steps.map(s => [s.backup.level, s.whole]), [[0, true], [1, true], [2, true]])

  t.throws(() => restorePlan(cat, '/data', ['/a/y.txt'], sec(4500)), { code: 'CATALOG_NOT_FOUND', message: '/a/y.txt: not in the backup of that date' })
  t.throws(() => restorePlan(cat, '/data', [], sec(4500)), { code: 'CATALOG_BAD_INPUT' })
  t.throws(() => restorePlan(cat, '/data', ['/a'], sec(10)), { code: 'CATALOG_NOT_FOUND' })
})
