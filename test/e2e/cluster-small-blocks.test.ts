/*
 * Issue 17 §1, "a small file's data may live in the database instead":
 * `tsnfs cluster init --small-blocks 64k` on data in S3 (radosgw; skipped with
 * the reason when none answers). Two servers; a 7-byte file's block becomes a
 * row of tsnfs_block and no object, a 100 KiB file's block an object and no
 * row; each reads back on the other server; fsck and gc agree; status says
 * where blocks go; the CLI refuses the option where it means nothing.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { FILE_SYNC, Nfs3, S } from '../helpers/local.ts'
import { bucketKeys, s3Status, testBucket } from '../helpers/s3.ts'
import { tsnfs } from '../cli/cli.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { clusterDbAt, clusterExports, readWhole, sql, startServers } from './cluster-harness.ts'

t.test('usage: --small-blocks is for init with data in S3', async (t) => {
  const base = ['--meta', 'postgres://u@127.0.0.1:1/x']
  const cases: [string[], string][] = [
    [['status', ...base, '--data', 's3://b1?endpoint=http://127.0.0.1:1', '--small-blocks', '64k'], '--small-blocks is for init (the threshold is fixed when the file system is made)'],
    [['init', ...base, '--data', 'postgres', '--small-blocks', '64k'], '--small-blocks needs --data s3://…: with --data postgres every block is in the database already'],
    [['init', ...base, '--data', 's3://b1', '--small-blocks', '2m'], '--small-blocks takes 0 to 1m bytes (e.g. 64k), not "2m"'],
    [['init', ...base, '--data', 's3://b1', '--small-blocks', '-5'], 'option'],
  ]
  for (const [args, message] of cases) {
    const r = await tsnfs(['cluster', ...args])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, message === 'option' ? /^tsnfs cluster: / : `tsnfs cluster: ${message}\n`)
  }
})

const status = await s3Status()

t.test('small blocks in the database, the rest in the bucket', { skip: status.reason ?? false }, async (t) => {
  const target = status.target
  if (target === undefined) throw new Error('skipped without a gateway')
  const bucket = await testBucket(t)
  const data = `s3://${bucket}?endpoint=${target.endpoint}&region=${target.region}&path_style=1`
  const db = clusterDbAt(t, await testDatabase(t))
  writeFileSync(db.credentials, `meta_password=${decodeURIComponent(new URL(db.adminUrl).password)}\ns3_access_key=${target.accessKey}\ns3_secret_key=${target.secretKey}\n`, { mode: 0o600 })
  const base = ['--meta', db.meta, '--data', data, '--credentials', db.credentials]
  const init = await tsnfs(['cluster', 'init', ...base, '--small-blocks', '64k'])
  t.equal(init.code, 0, `init: ${init.stderr}`)
  t.match(init.stdout, /, blocks of at most 65536 bytes in postgres table tsnfs_block\n$/)
  const again = await tsnfs(['cluster', 'init', ...base, '--small-blocks', '4k'])
  t.equal(again.code, 1)
  // A line of its own: the S3 SDK may print a warning of its own (its Node version notice) beside it.
  t.match(again.stderr, /^tsnfs cluster init: database already keeps blocks of at most 65536 bytes in the database, not 4096: the threshold is fixed at init$/m)

  const [a, b] = await startServers(t, clusterExports(t, db, data), 2)
  if (a === undefined || b === undefined) throw new Error('two servers expected')
  const na = await Nfs3.connect(t, a.port)
  const nb = await Nfs3.connect(t, b.port)
  const root = await na.mount('/shared')
  await nb.mount('/shared')
  const put = async (name: string, bytes: Buffer): Promise<Buffer> => {
    const c = await na.create(root, name)
    t.equal(c.status, S.OK, `CREATE ${name}`)
    const fh = c.fh ?? Buffer.alloc(0)
    t.equal((await na.write(fh, 0n, bytes, FILE_SYNC)).status, S.OK, `FILE_SYNC WRITE of ${bytes.length} bytes`)
    return fh
  }
  const tiny = Buffer.from('seven!\n')
  const mid = randomBytes(100 * 1024)
  const tinyFh = await put('tiny', tiny)
  const midFh = await put('mid', mid)

  const rows = (await sql(db, 'SELECT key, octet_length(data) AS n FROM tsnfs_block ORDER BY key')).map((r) => [String(r['key']), Number(r['n'])])
  t.equal(rows.length, 1, `one row: ${JSON.stringify(rows)}`)
  t.match(rows[0]?.[0], /^chunks\/[0-9a-f]{2}\/\d+_0_7$/, "the 7-byte block's key")
  t.equal(rows[0]?.[1], 7)
  const objects = await bucketKeys(target, bucket)
  t.equal(objects.length, 1, `one object: ${JSON.stringify(objects)}`)
  t.match(objects[0], /^chunks\/[0-9a-f]{2}\/\d+_0_102400$/, "the 100 KiB block's key")

  t.same(await readWhole(nb, tinyFh), tiny, 'B reads the small file (from the database)')
  t.ok((await readWhole(nb, midFh)).equals(mid), 'B reads the 100 KiB file (from the bucket)')

  const fsck = await tsnfs(['cluster', 'fsck', ...base])
  t.equal(fsck.code, 0, `fsck finds both blocks: ${fsck.stdout}${fsck.stderr}`)
  const gc = await tsnfs(['cluster', 'gc', ...base, '--min-age', '0s'])
  t.equal(gc.code, 0, `gc: ${gc.stdout}${gc.stderr}`)
  t.equal((await sql(db, 'SELECT count(*)::int AS n FROM tsnfs_block'))[0]?.['n'], 1, 'gc kept the referenced row')
  t.equal((await bucketKeys(target, bucket)).length, 1, 'gc kept the referenced object')
  const st = await tsnfs(['cluster', 'status', ...base])
  t.match(st.stdout, /^object store: s3:\/\/.*, blocks of at most 65536 bytes in postgres table tsnfs_block$/m)

  // Removed files: their blocks leave the store each lives in.
  t.equal(await na.remove(root, 'tiny'), S.OK)
  t.equal(await na.remove(root, 'mid'), S.OK)
  for (let i = 0; i < 100; i++) {
    const left = Number((await sql(db, 'SELECT count(*)::int AS n FROM tsnfs_block'))[0]?.['n']) + (await bucketKeys(target, bucket)).length
    if (left === 0) break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.equal((await sql(db, 'SELECT count(*)::int AS n FROM tsnfs_block'))[0]?.['n'], 0, 'the row is gone')
  t.same(await bucketKeys(target, bucket), [], 'the object is gone')
})
