/*
 * Issue 17 §1 and §5 with data in S3 (Ceph's RADOS Gateway that .ci/run
 * starts; skipped with the reason when none answers): `tsnfs cluster init`
 * creates the bucket, two servers share the tree, a file written on one
 * (larger than a block, so several objects) reads back whole on the other,
 * and `tsnfs cluster fsck` finds every referenced block in the bucket.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { s3Status, testBucket } from '../helpers/s3.ts'
import { tsnfs } from '../cli/cli.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { clusterDbAt, clusterExports, clusterInit, readWhole, startServers } from './cluster-harness.ts'

const status = await s3Status()

t.test('two servers on data=s3', { skip: status.reason ?? false }, async (t) => {
  const target = status.target
  if (target === undefined) throw new Error('skipped without a gateway')
  const bucket = await testBucket(t)
  const data = `s3://${bucket}?endpoint=${target.endpoint}&region=${target.region}&path_style=1`
  const db = clusterDbAt(t, await testDatabase(t))
  writeFileSync(db.credentials, `meta_password=${decodeURIComponent(new URL(db.adminUrl).password)}\ns3_access_key=${target.accessKey}\ns3_secret_key=${target.secretKey}\n`, { mode: 0o600 })
  await clusterInit(t, db, data)
  const [a, b] = await startServers(t, clusterExports(t, db, data), 2)
  if (a === undefined || b === undefined) throw new Error('two servers expected')
  const na = await Nfs3.connect(t, a.port)
  const nb = await Nfs3.connect(t, b.port)
  const root = await na.mount('/shared')
  t.ok(root.equals(await nb.mount('/shared')), 'one root handle on both servers')

  // 5 MiB + 7: two 4 MiB blocks' worth, written UNSTABLE in 1 MiB pieces, then COMMIT.
  const big = randomBytes(5 * 1024 * 1024 + 7)
  const c = await na.create(root, 'big')
  const fh = c.fh ?? Buffer.alloc(0)
  for (let off = 0; off < big.length; off += 1 << 20) {
    const w = await na.write(fh, BigInt(off), big.subarray(off, off + (1 << 20)), UNSTABLE)
    t.equal(w.status, S.OK, `WRITE at ${off}`)
  }
  t.equal((await na.commit(fh)).status, S.OK, 'COMMIT: in the bucket and the database')
  t.ok((await readWhole(nb, fh)).equals(big), "B reads A's 5 MiB whole")
  const small = await nb.create(root, 'small')
  t.equal((await nb.write(small.fh ?? Buffer.alloc(0), 0n, Buffer.from('from B\n'), FILE_SYNC)).status, S.OK)
  t.strictSame(await readWhole(na, small.fh ?? Buffer.alloc(0)), Buffer.from('from B\n'), "A reads B's FILE_SYNC write")

  const base = ['--meta', db.meta, '--data', data, '--credentials', db.credentials]
  const fsck = await tsnfs(['cluster', 'fsck', ...base])
  t.equal(fsck.code, 0, `fsck: ${fsck.stdout}${fsck.stderr}`)
  const st = await tsnfs(['cluster', 'status', ...base])
  t.match(st.stdout, new RegExp(`^object store: s3://${bucket}/ at ${target.endpoint.replace(/[.]/g, '\\.')}`, 'm'))
  t.match(st.stdout, /^servers: 2$/m)
})
