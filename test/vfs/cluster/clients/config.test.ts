/* meta=/data=/credentials= parsing, secrets from a file or the environment, and openClusterStores on the real database. */
import t from 'tap'
import type { Test } from 'tap'
import { chmodSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ClusterConfigError, describeConfig, loadSecrets, parseClusterConfig, parseCredentials } from '../../../../vfs/cluster/clients/config.ts'
import { openClusterStores } from '../../../../vfs/cluster/clients/open.ts'
import { DatabaseUnavailable } from '../../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../../vfs/cluster/clients/pg-store.ts'
import { S3Store } from '../../../../vfs/cluster/clients/s3-store.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { closedPort } from '../../../helpers/ports.ts'

const META = 'postgres://tsnfs@db1:5432/fs?sslmode=verify-full'

function refused(t: Test, input: Parameters<typeof parseClusterConfig>[0], message: RegExp | string): void {
  t.throws(() => parseClusterConfig(input), { name: 'ClusterConfigError', code: 'CLUSTER_CONFIG', message }, JSON.stringify(input))
}

t.test('meta and data URLs', async (t) => {
  t.same(parseClusterConfig({ meta: META, data: 'postgres' }), { meta: META, data: { kind: 'postgres' } })
  t.same(parseClusterConfig({ meta: META, data: 's3://blocks?endpoint=http://127.0.0.1:7480&region=eu-1', credentials: '/etc/tsnfs/cluster.cred' }), {
    meta: META,
    data: { kind: 's3', bucket: 'blocks', prefix: '', endpoint: 'http://127.0.0.1:7480', region: 'eu-1', pathStyle: true },
    credentials: '/etc/tsnfs/cluster.cred',
  }, 'an endpoint of our own: path style by default')
  t.same(parseClusterConfig({ meta: META, data: 's3://my.bucket/fs1?path_style=0' }).data,
    { kind: 's3', bucket: 'my.bucket', prefix: 'fs1/', region: 'us-east-1', pathStyle: false }, 'AWS: virtual-host style, a prefix')
  t.same(parseClusterConfig({ meta: 'postgresql://u@localhost/fs?host=/run/postgresql', data: 'postgres' }).meta, 'postgresql://u@localhost/fs?host=/run/postgresql', 'a socket directory')
  t.equal(describeConfig(parseClusterConfig({ meta: META, data: 's3://b1b/x?endpoint=http://h:1' })), `meta ${META}, data s3://b1b/x/ at http://h:1`)
})

t.test('refusals, each with its reason', async (t) => {
  refused(t, { meta: 'postgres://tsnfs:hunter2@db1/fs', data: 'postgres' }, 'put the password in the credentials file or PGPASSWORD')
  refused(t, { meta: 'postgres://tsnfs@db1/fs?password=hunter2', data: 'postgres' }, 'put the password in the credentials file or PGPASSWORD')
  refused(t, { meta: undefined, data: 'postgres' }, /meta=postgres:\/\/.* is required/)
  refused(t, { meta: META, data: undefined }, /data=postgres or data=s3/)
  refused(t, { meta: 'mysql://u@h/db', data: 'postgres' }, /scheme must be postgres/)
  refused(t, { meta: 'postgres://u@h', data: 'postgres' }, /name the database/)
  refused(t, { meta: 'not a url', data: 'postgres' }, /not a URL/)
  refused(t, { meta: `postgres://u@h/${'x'.repeat(5000)}`, data: 'postgres' }, /at most 4096/)
  refused(t, { meta: META, data: 'file:///x' }, /not postgres or an s3/)
  refused(t, { meta: META, data: 's3://AK:SK@bucket' }, /holds keys/)
  refused(t, { meta: META, data: 's3://bucket?access_key=AK' }, /holds keys/)
  refused(t, { meta: META, data: 's3://bucket?endpoint=http://AK:SK@h' }, /holds keys/)
  refused(t, { meta: META, data: 's3://Bad_Bucket' }, /not an S3 bucket name/)
  refused(t, { meta: META, data: 's3://bucket?endpoint=ftp://h' }, /http:\/\/ or https:\/\//)
  refused(t, { meta: META, data: 's3://bucket?path_style=yes' }, /path_style=yes \(0 or 1\)/)
  refused(t, { meta: META, data: 's3://bucket?colour=blue' }, /unknown parameter colour/)
  refused(t, { meta: META, data: 'postgres', credentials: 'relative.cred' }, /absolute path/)
})

t.test('the credentials file: names, comments, exact errors', async (t) => {
  t.same(parseCredentials('# cluster secrets\n\nmeta_password = pa=ss#word \r\ns3_access_key=AK\n  # indented comment\ns3_secret_key=SK\n', 'f'),
    { metaPassword: 'pa=ss#word', s3AccessKey: 'AK', s3SecretKey: 'SK' })
  t.throws(() => parseCredentials('meta_password\n', 'f'), new ClusterConfigError('f:1: expected name=value'))
  t.throws(() => parseCredentials('\npassword=x\n', 'f'), new ClusterConfigError('f:2: unknown name password (meta_password, s3_access_key, s3_secret_key)'))
  t.throws(() => parseCredentials('s3_access_key=a\ns3_access_key=b\n', 'f'), new ClusterConfigError('f:2: s3_access_key given twice'))
})

t.test('secrets: the file first, then the environment; a file others can read is warned about', async (t) => {
  const dir = t.testdir({ 'c.cred': 'meta_password=from-file\n', 'big.cred': 'x'.repeat(70_000), 'keys.cred': 's3_access_key=AK\n' })
  const file = path.join(dir, 'c.cred')
  chmodSync(file, 0o600)
  const warnings: string[] = []
  const warn = (m: string): void => { warnings.push(m) }
  const cfg = parseClusterConfig({ meta: META, data: 'postgres', credentials: file })
  const env = { PGPASSWORD: 'from-env', AWS_ACCESS_KEY_ID: 'EAK', AWS_SECRET_ACCESS_KEY: 'ESK' }
  t.same(await loadSecrets(cfg, env, warn), { metaPassword: 'from-file', s3AccessKey: 'EAK', s3SecretKey: 'ESK' })
  t.same(warnings, [], 'mode 600: no warning')
  chmodSync(file, 0o644)
  await loadSecrets(cfg, env, warn)
  t.match(warnings, [/readable by others \(mode 644\); chmod 600 it/])
  t.same(await loadSecrets(parseClusterConfig({ meta: META, data: 'postgres' }), env), { metaPassword: 'from-env', s3AccessKey: 'EAK', s3SecretKey: 'ESK' }, 'no file: the environment')
  t.same(await loadSecrets(parseClusterConfig({ meta: META, data: 'postgres' }), {}), {}, 'nothing at all (~/.pgpass or trust may still do)')
  await t.rejects(loadSecrets(parseClusterConfig({ meta: META, data: 'postgres', credentials: path.join(dir, 'none') }), {}), { name: 'ClusterConfigError', message: /none: ENOENT/ })
  await t.rejects(loadSecrets(parseClusterConfig({ meta: META, data: 'postgres', credentials: path.join(dir, 'big.cred') }), {}), { message: /70000 bytes \(at most 65536\)/ })
  await t.rejects(loadSecrets(parseClusterConfig({ meta: META, data: 'postgres', credentials: dir }), {}), { message: /not a regular file/ })
  chmodSync(path.join(dir, 'keys.cred'), 0o600)
  await t.rejects(loadSecrets(parseClusterConfig({ meta: META, data: 'postgres', credentials: path.join(dir, 'keys.cred') }), {}), { message: /access key without its secret key/ })
})

t.test('openClusterStores: data=postgres on the real database, the password from the credentials file', async (t) => {
  const url = new URL(await testDatabase(t))
  const password = decodeURIComponent(url.password)
  url.password = ''
  const dir = t.testdir()
  const cred = path.join(dir, 'cluster.cred')
  writeFileSync(cred, `meta_password=${password}\n`, { mode: 0o600 })
  const cfg = parseClusterConfig({ meta: url.toString(), data: 'postgres', credentials: cred })
  const stores = await openClusterStores(cfg, {}, { init: true })
  t.teardown(() => stores.close())
  t.ok(stores.store instanceof PgStore)
  t.equal(stores.describe, `meta ${url.toString()}, data postgres`)
  t.notMatch(stores.describe, `:${password}@`, "no password in the description")
  await stores.store.put('k', Buffer.from('v'))
  t.same(await stores.store.get('k', 0, 1), Buffer.from('v'), 'the block table was created by init')

  // The same database through PGPASSWORD; an S3 store is only constructed (nothing is sent until used).
  const viaEnv = await openClusterStores(parseClusterConfig({ meta: url.toString(), data: 's3://bucket1?endpoint=http://127.0.0.1:1' }), { PGPASSWORD: password, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' })
  t.teardown(() => viaEnv.close())
  t.ok(viaEnv.store instanceof S3Store)
  t.equal(viaEnv.store.describe(), 's3://bucket1/ at http://127.0.0.1:1')
})

t.test('openClusterStores: a wrong password or an absent database fails at open, with the database named', async (t) => {
  const url = new URL(await testDatabase(t))
  url.password = ''
  const wrong = await openClusterStores(parseClusterConfig({ meta: url.toString(), data: 'postgres' }), { PGPASSWORD: 'wrong' }).then(() => undefined, (e: unknown) => e)
  t.match(String(wrong), /password authentication failed/)
  t.equal((wrong as { code?: string }).code, '28P01', 'the SQLSTATE is kept (not a connection error: no retry)')
  const port = await closedPort()
  const down = await openClusterStores(parseClusterConfig({ meta: `postgres://u@127.0.0.1:${port}/fs`, data: 'postgres' }), { PGPASSWORD: 'x' }).then(() => undefined, (e: unknown) => e)
  t.ok(down instanceof DatabaseUnavailable, String(down))
  t.match((down as Error).message, `postgres u@127.0.0.1:${port}/fs`)
})
