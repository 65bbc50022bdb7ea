/*
 * backend=cluster export lines (issue 17 §1, §7): option values that are
 * URLs survive the parser whole, the cluster options exist only with
 * backend=cluster, and errors point at the line and column of the bad option.
 */
import t from 'tap'
import { ExportsError } from '../../server/exports/errors.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { exportListChecker } from '../../server/exports/schema.ts'
import { BackendSet } from '../../server/backends.ts'
import { ExportTable } from '../../server/exports/table.ts'
import { ClusterKeys } from '../../server/cluster-keys.ts'
import type { ExportKey } from '../../server/nfs3/filehandle.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../../vfs/types.ts'

function parseError(text: string): ExportsError {
  try {
    parseExports(text, 'exports')
  } catch (err) {
    if (err instanceof ExportsError) return err
    throw err
  }
  throw new Error('expected an ExportsError')
}

const META = 'postgres://tsnfs@db.example:5432/fs1?sslmode=disable&application_name=tsnfs'
const S3 = 's3://bucket?endpoint=http://127.0.0.1:7480&region=default&path_style=1'

t.test('URLs with "=", "?", "&", ":" and "/" survive as option values', async (t) => {
  const list = parseExports(`/shared *(rw,backend=cluster,meta=${META},data=${S3},credentials=/etc/tsnfs/cluster.cred)\n`, 'exports')
  const e = list.exports[0]
  t.equal(e?.backend, 'cluster')
  t.strictSame(e?.cluster, { meta: META, data: S3, credentials: '/etc/tsnfs/cluster.cred' })
  t.equal(exportListChecker.Check(list), true, 'the parsed list matches the schema')
  t.strictSame(e?.clients[0]?.options.rw, true)
})

t.test('data=postgres, options in the line defaults, no credentials file', async (t) => {
  const list = parseExports('/a -backend=cluster,meta=postgresql://u@[::1]:5433/db,data=postgres 10.0.0.0/8(rw) *(ro)\n', 'exports')
  t.strictSame(list.exports[0]?.cluster, { meta: 'postgresql://u@[::1]:5433/db', data: 'postgres' })
  t.equal(list.exports[0]?.clients.length, 2)
  t.equal(list.exports[0]?.engine, undefined)
})

t.test('cache=: the data block cache of a cluster export, in the entry and the schema', async (t) => {
  const list = parseExports('/a *(rw,backend=cluster,meta=postgres://u@h/db,data=postgres,cache=64M)\n/b *(backend=cluster,meta=postgres://u@h/db,data=postgres)\n', 'exports')
  t.strictSame(list.exports[0]?.cluster, { meta: 'postgres://u@h/db', data: 'postgres', cacheBytes: 64 * 1024 * 1024 })
  t.strictSame(list.exports[1]?.cluster, { meta: 'postgres://u@h/db', data: 'postgres' }, 'absent: the backend default')
  t.equal(exportListChecker.Check(list), true, 'the parsed list matches the schema')
  t.match(parseError('/a *(backend=cluster,meta=postgres://u@h/db,data=postgres,cache=1k)'), { code: 'EXPORTS_INVALID', line: 1, column: 59, reason: 'cache needs a size of at least 1M (e.g. 256M), got "1k"' })
})

t.test('metacache=: the metadata caches of a cluster export, in the entry and the schema; refused elsewhere', async (t) => {
  const list = parseExports('/a *(rw,backend=cluster,meta=postgres://u@h/db,data=postgres,metacache=16M,cache=64M)\n', 'exports')
  t.strictSame(list.exports[0]?.cluster, { meta: 'postgres://u@h/db', data: 'postgres', cacheBytes: 64 * 1024 * 1024, metaCacheBytes: 16 * 1024 * 1024 })
  t.equal(exportListChecker.Check(list), true, 'the parsed list matches the schema')
  t.match(parseError('/a *(backend=cluster,meta=postgres://u@h/db,data=postgres,metacache=512k)'), { code: 'EXPORTS_INVALID', line: 1, column: 59, reason: 'metacache needs a size of at least 1M (e.g. 64M), got "512k"' })
  t.match(parseError('/a *(backend=engine,image=/i.img,metacache=16M)'), { code: 'EXPORTS_INVALID', line: 1, column: 1, reason: 'metacache= applies only to backend=cluster (export "/a")' })
  t.match(parseError('/a *(metacache=16M)'), { code: 'EXPORTS_INVALID', line: 1, column: 1, reason: 'metacache= applies only to backend=cluster (export "/a")' })
})

t.test('errors name line and column of the bad option, with exact reasons', async (t) => {
  const cases: [string, number, number, string][] = [
    ['/a *(backend=cluster,meta=mysql://h/db,data=postgres)', 1, 22, 'meta needs a postgres://user@host:port/database URL, got "mysql://h/db"'],
    ['/a *(backend=cluster,meta=postgres:///db,data=postgres)', 1, 22, 'meta needs a postgres://user@host:port/database URL, got "postgres:///db"'],
    ['/a *(backend=cluster,meta=postgres://u:secret@h/db,data=postgres)', 1, 22, 'meta URL carries a password: put it in the credentials= file or PGPASSWORD'],
    ['/a *(backend=cluster,meta=postgres://u@h/db,data=file:///x)', 1, 45, 'data needs postgres or an s3://bucket?endpoint=URL URL, got "file:///x"'],
    ['/a *(backend=cluster,meta=postgres://u@h/db,data=s3://k:s@b)', 1, 45, 'data URL carries credentials: put them in the credentials= file or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY'],
    ['/a *(backend=cluster,meta=postgres://u@h/db,data=postgres,credentials=rel/x)', 1, 59, 'credentials needs an absolute path, got "rel/x"'],
    [`/a *(backend=cluster,meta=postgres://u@h/${'d'.repeat(2100)},data=postgres)`, 1, 22, 'meta URL is longer than 2048 characters'],
    ['/a *(backend=cluster,meta=postgres://u@h,data=postgres)', 1, 22, 'meta=postgres://u@h: name the database (postgres://user@host:port/db)'],
    ['/a *(backend=cluster,meta=postgres://u@h/db,data=s3://Bad_Bucket)', 1, 45, 'data=s3://Bad_Bucket: "Bad_Bucket" is not an S3 bucket name (3..63 of a-z 0-9 . -)'],
    ['/a *(backend=cluster,meta=postgres://u@h/db,data=s3://bk1?endpoint=http://h:1&colour=red)', 1, 45, 'data: unknown parameter colour (endpoint, region, path_style)'],
    ['/a *(backend=cluster,data=postgres)', 1, 1, 'backend=cluster needs meta=postgres://user@host:port/database (export "/a")'],
    ['/a *(backend=cluster,meta=postgres://u@h/db)', 1, 1, 'backend=cluster needs data=postgres or data=s3://bucket?endpoint=URL (export "/a")'],
    ['/a *(backend=memory,meta=postgres://u@h/db)', 1, 1, 'meta=, data= and credentials= apply only to backend=cluster (export "/a")'],
    ['/a *(data=postgres)', 1, 1, 'meta=, data= and credentials= apply only to backend=cluster (export "/a")'],
    ['\n/a h1(backend=cluster,meta=postgres://u@h/db,data=postgres) h2(meta=postgres://u@h/other)', 2, 64, 'conflicting meta for this export ("postgres://u@h/db" and "postgres://u@h/other")'],
    ['/a *(backend=clustr)', 1, 6, 'unknown backend "clustr" (known: memory, local, engine, cluster)'],
  ]
  for (const [text, line, column, reason] of cases) {
    const err = parseError(text)
    t.match(err, { code: 'EXPORTS_INVALID', line, column, reason }, text.slice(0, 80))
  }
})

t.test('a reload with the same cluster settings keeps the backend; other settings open a new one', async (t) => {
  let opened = 0
  const factories = new Map([['cluster', (): Vfs => {
    opened++
    return new MemoryVfs()
  }]])
  const set = new BackendSet({ stateDir: t.testdir() }, factories)
  t.teardown(() => set.close())
  const line = (meta: string): ReturnType<typeof parseExports> => parseExports(`/s *(rw,backend=cluster,meta=${meta},data=postgres)\n`, 'exports')
  const a = new ExportTable(line('postgres://u@h/db1'))
  await set.sync(a.all())
  const first = set.get(a.all()[0]?.id ?? -1)
  await set.sync(new ExportTable(line('postgres://u@h/db1')).all())
  t.equal(set.get(a.all()[0]?.id ?? -1), first, 'same settings: the same backend object')
  t.equal(opened, 1)
  await set.sync(new ExportTable(line('postgres://u@h/db2')).all())
  t.not(set.get(a.all()[0]?.id ?? -1), first, 'another database: a new backend')
  t.equal(opened, 2)
})

t.test('each cluster export claims its own key; a replaced backend releasing it changes nothing', async (t) => {
  const applied: [number, ExportKey | null][] = []
  const keys = new ClusterKeys((id, key) => { applied.push([id, key]) })
  const old = {}
  const next = {}
  const k1 = Buffer.alloc(32, 1)
  const k2 = Buffer.alloc(32, 2)
  keys.set(7, old, 'pending')
  keys.set(7, old, k1)
  keys.set(9, {}, k2)
  t.strictSame(keys.claimed(), [7, 9], 'two exports, two keys of their own')
  // A reload reopens export 7 with other settings: the new backend opens before the old one closes.
  keys.set(7, next, k2)
  keys.release(7, old)
  t.strictSame(applied, [[7, 'pending'], [7, k1], [9, k2], [7, k2]], 'the old backend\'s release did not undo the new key')
  keys.release(7, next)
  t.strictSame(applied.at(-1), [7, null], 'released by its holder: back to the server key')
  t.strictSame(keys.claimed(), [9])
})
