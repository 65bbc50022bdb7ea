/* S3Store's failures: an unreachable or silent store gives ObjectStoreUnavailable within a bound, never a hang; radosgw's refusals are named. */
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { S3Store } from '../../../../vfs/cluster/clients/s3-store.ts'
import { ObjectStoreUnavailable } from '../../../../vfs/cluster/object-store.ts'
import { closedPort } from '../../../helpers/ports.ts'
import { s3Status } from '../../../helpers/s3.ts'

async function failure(p: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const started = Date.now()
  const err = await p.then(() => undefined, (e: unknown) => e)
  return { err, ms: Date.now() - started }
}

t.test('a closed port: every operation is ObjectStoreUnavailable within a bound', async (t) => {
  const port = await closedPort()
  const endpoint = `http://127.0.0.1:${port}`
  const store = new S3Store({ bucket: 'closed', endpoint, accessKeyId: 'a', secretAccessKey: 'b', maxAttempts: 3 })
  t.teardown(() => store.close())
  const ops: [string, () => Promise<unknown>][] = [
    ['put', () => store.put('k', Buffer.from('x'))],
    ['get', () => store.get('k', 0, 10)],
    ['delete', () => store.delete(['k'])],
    ['list', async () => { for await (const o of store.list('')) t.fail(`listed ${o.key}`) }],
    ['init', () => store.init()],
  ]
  for (const [name, op] of ops) {
    const { err, ms } = await failure(op())
    t.ok(err instanceof ObjectStoreUnavailable, `${name}: ${String(err)}`)
    t.match((err as Error).message, `s3://closed/ at ${endpoint}`)
    t.match((err as Error).message, /ECONNREFUSED/)
    t.ok(ms < 5000, `${name} failed after ${ms} ms (3 tries)`)
  }
})

t.test('a store that accepts and never answers: unavailable within the operation bound', async (t) => {
  const sockets = new Set<net.Socket>()
  const silent = net.createServer((s) => { sockets.add(s) })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
  const store = new S3Store({ bucket: 'silent', endpoint, accessKeyId: 'a', secretAccessKey: 'b', requestTimeoutMs: 400, operationTimeoutMs: 1500 })
  t.teardown(() => store.close())
  for (const [name, op] of [['get', () => store.get('k', 0, 10)], ['put', () => store.put('k', Buffer.alloc(1000))]] as const) {
    const { err, ms } = await failure(op())
    t.ok(err instanceof ObjectStoreUnavailable, `${name}: ${String(err)}`)
    t.match((err as Error).message, endpoint)
    t.ok(ms < 3000, `${name} failed after ${ms} ms`)
  }
})

const s3 = await s3Status()
t.test('radosgw refusals are named: a missing bucket, wrong keys', s3.target === undefined ? { skip: s3.reason } : {}, async (t) => {
  const target = s3.target
  if (target === undefined) return
  const env = { endpoint: target.endpoint, region: target.region, accessKeyId: target.accessKey, secretAccessKey: target.secretKey }
  const missing = new S3Store({ ...env, bucket: 'tsnfs-no-such-bucket' })
  t.teardown(() => missing.close())
  const a = await failure(missing.get('k', 0, 1))
  t.ok(a.err instanceof ObjectStoreUnavailable, String(a.err))
  t.match((a.err as Error).message, /NoSuchBucket/)
  const b = await failure(missing.put('k', Buffer.from('x')))
  t.match((b.err as Error).message, /NoSuchBucket/)
  const wrong = new S3Store({ ...env, bucket: 'tsnfs-no-such-bucket', secretAccessKey: 'not-the-secret' })
  t.teardown(() => wrong.close())
  const c = await failure(wrong.init())
  t.ok(c.err instanceof ObjectStoreUnavailable, String(c.err))
  t.match((c.err as Error).message, /SignatureDoesNotMatch|AccessDenied|HTTP 403/)
})
