import t from 'tap'
import { createHash } from 'node:crypto'
import { parseExports } from '../../../server/exports/parse.ts'
import { ExportTable, exportId } from '../../../server/exports/table.ts'
import type { HostResolver } from '../../../server/exports/resolver.ts'
import type { Peer } from '../../../server/rpc/program.ts'

const noNames: HostResolver = { lookup: async () => [], reverse: async () => [] }
const text = [
  '/srv/data  10.0.0.0/8(rw) *(ro,insecure)',
  '/srv/data/nested  *(rw,fsid=42)',
  '/srv/u  *(fsid=12345678-9abc-def0-1234-56789abcdef0)',
].join('\n')

function table(src = text): ExportTable {
  return new ExportTable(parseExports(src, 'exports'), { resolver: noNames })
}

function sha4(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0)
}

t.test('export ids: fsid number, else a hash of the path (or of the uuid)', async (t) => {
  const tab = table()
  t.same(tab.all().map((e) => [e.path, e.id]), [
    ['/srv/data', sha4('path:/srv/data')],
    ['/srv/data/nested', 42],
    ['/srv/u', sha4('uuid:123456789abcdef0123456789abcdef0')],
  ])
  // Stable: a new table from the same text gives the same ids.
  t.same(table().all().map((e) => e.id), tab.all().map((e) => e.id))
  const e = tab.byId(42)
  t.equal(e?.path, '/srv/data/nested')
  t.equal(tab.byId(1), undefined)
  t.equal(exportId(parseExports('/a *(fsid=root)', 'x').exports[0]!), 0)
})

t.test('id collisions are an error naming both exports', async (t) => {
  t.throws(() => table('/a *(fsid=5)\n/b *(fsid=5)\n'), {
    code: 'EXPORTS_INVALID',
    line: 2,
    message: 'exports:2:1: export id 5 of "/b" is also the id of "/a" (line 1); give one a distinct fsid=',
  })
  const hashed = sha4('path:/a')
  t.throws(() => table(`/a *\n/b *(fsid=${hashed})\n`), { code: 'EXPORTS_INVALID', line: 2 })
})

t.test('byPath: exact, subdirectory, deepest export, normalization', async (t) => {
  const tab = table()
  const at = (p: string | Buffer) => {
    const r = tab.byPath(p)
    return r === null ? null : [r.export.path, r.subpath]
  }
  t.same(at('/srv/data'), ['/srv/data', ''])
  t.same(at('/srv/data/'), ['/srv/data', ''])
  t.same(at('//srv//data///a/b/'), ['/srv/data', 'a/b'])
  t.same(at(Buffer.from('/srv/data/x')), ['/srv/data', 'x'])
  t.same(at('/srv/data/nested/deep'), ['/srv/data/nested', 'deep'])
  t.same(at('/srv/datax'), null)
  t.same(at('/srv'), null)
  t.same(at('srv/data'), null)
  t.same(at('/srv/data/../u'), null)
  t.same(at('/srv/data/./x'), null)
  t.same(at(Buffer.from([0x2f, 0xff, 0xfe])), null)
  const root = table('/ *\n/a *')
  t.same(root.byPath('/b/c')?.subpath, 'b/c')
  t.same(root.byPath('/')?.subpath, '')
  t.same(root.byPath('/a/x')?.export.path, '/a')
})

t.test('list: paths and client names as written (MOUNT EXPORT)', async (t) => {
  t.strictSame(table().list(), [
    { path: '/srv/data', groups: ['10.0.0.0/8', '*'] },
    { path: '/srv/data/nested', groups: ['*'] },
    { path: '/srv/u', groups: ['*'] },
  ])
})

t.test('clientOptions applies the matching spec and secure', async (t) => {
  const tab = table()
  const data = tab.byPath('/srv/data')!.export
  t.match(await tab.clientOptions(data, { address: '10.1.1.1', port: 800 }), { ok: true, client: '10.0.0.0/8', options: { rw: true } })
  t.strictSame(await tab.clientOptions(data, { address: '10.1.1.1', port: 40000 }), { ok: false, reason: 'insecure-port' })
  t.match(await tab.clientOptions(data, { address: '::ffff:8.8.8.8', port: 40000, family: 'IPv6' }), { ok: true, client: '*', options: { rw: false } })
})

t.test('replace: atomic swap, ids kept, a bad list leaves the old table', async (t) => {
  const tab = table()
  const old = tab.byPath('/srv/data')!.export
  t.throws(() => { tab.replace(parseExports('/a *(fsid=1)\n/b *(fsid=1)', 'exports')) }, { code: 'EXPORTS_INVALID' })
  t.equal(tab.all().length, 3)
  tab.replace(parseExports('/srv/data 10.0.0.0/8(ro)\n/new *', 'exports'))
  t.same(tab.all().map((e) => e.path), ['/srv/data', '/new'])
  const now = tab.byPath('/srv/data')!.export
  t.equal(now.id, old.id)
  t.equal(tab.byId(42), undefined)
  // An Export object held across the reload gets the new policy...
  t.match(await tab.clientOptions(old, { address: '10.0.0.1', port: 1 }), { ok: true, options: { rw: false } })
  t.strictSame(await tab.clientOptions(old, { address: '8.8.8.8', port: 1 }), { ok: false, reason: 'not-allowed' })
  // ...and one whose export is gone is refused.
  const gone = table().byId(42)!
  t.strictSame(await tab.clientOptions(gone, { address: '10.0.0.1', port: 1 }), { ok: false, reason: 'not-allowed' })
})

t.test('default resolver is used when none is given', async (t) => {
  const tab = new ExportTable(parseExports('/a localhost(insecure)', 'x'))
  const a = tab.byPath('/a')!.export
  t.match(await tab.clientOptions(a, { address: '127.0.0.1', port: 5000 }), { ok: true, client: 'localhost' })
})

t.test('accepts the RPC layer peer type as is', async (t) => {
  const tab = table()
  const peer: Peer = { address: '10.2.3.4', port: 600, family: 'IPv4' }
  t.match(await tab.clientOptions(tab.byPath('/srv/data')!.export, peer), { ok: true, client: '10.0.0.0/8' })
})
