/*
 * The single-node Ceph of deploy/ceph (issue 17 §4), checked where it runs:
 * S3 through @aws-sdk/client-s3 against the gateway .ci/run started (nothing
 * new is started here; without a gateway those tests skip with the reason,
 * and with TSNFS_S3_REQUIRED=1 they fail), the helper's skip-or-fail rule in
 * child processes, and the scripts' refusals (a foreign directory is never
 * wiped, a stale pid file never kills a process that is not Ceph's).
 */
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync, writeFileSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import {
  GetObjectCommand, PutObjectCommand, ListObjectsV2Command, DeleteObjectCommand,
  DeleteObjectsCommand, HeadObjectCommand, CreateBucketCommand, HeadBucketCommand,
} from '@aws-sdk/client-s3'
import { s3Status, s3StatusOf, s3Client, testBucket, CEPH_DIR } from '../helpers/s3.ts'
import { s3Relay } from '../helpers/s3-relay.ts'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const START = join(ROOT, 'deploy', 'ceph', 'start.sh')
const STOP = join(ROOT, 'deploy', 'ceph', 'stop.sh')

const s3 = await s3Status()
const skip = s3.reason ?? false

async function body(out: { Body?: { transformToByteArray(): Promise<Uint8Array> } }): Promise<Buffer> {
  if (out.Body === undefined) throw new Error('no body')
  return Buffer.from(await out.Body.transformToByteArray())
}

interface Exit { code: number; stdout: string; stderr: string }

/** Run a script to its end: exit status and output, whether it failed or not. */
async function exitOf(file: string, args: string[], timeout = 60_000): Promise<Exit> {
  try {
    const { stdout, stderr } = await run(file, args, { timeout })
    return { code: 0, stdout, stderr }
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

function nameOf(err: unknown): string {
  return (err as { name?: string }).name ?? String(err)
}

t.test('put, ranged get, head, list with prefix and pages, delete, on the running gateway', { skip }, async (t) => {
  const target = s3.target!
  const client = s3Client(target)
  t.teardown(() => { client.destroy() })
  const bucket = await testBucket(t, { create: true })
  await client.send(new HeadBucketCommand({ Bucket: bucket }))

  // a 4 MiB block, as the cluster backend stores them, and small ones
  const block = randomBytes(4 << 20)
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0', Body: block }))
  for (let i = 0; i < 5; i++) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `chunks/2/${i}`, Body: Buffer.from(`small ${i}`) }))
  }
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'other', Body: Buffer.alloc(0) }))

  const whole = await body(await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0' })))
  t.equal(whole.length, block.length, 'the block comes back whole')
  t.ok(whole.equals(block), 'byte for byte')
  const part = await body(await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0', Range: 'bytes=1048575-1048584' })))
  t.same(part, block.subarray(1048575, 1048585), 'a range across a MiB boundary')
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0' }))
  t.equal(head.ContentLength, 4 << 20, 'HEAD gives the size')
  const empty = await body(await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'other' })))
  t.equal(empty.length, 0, 'an empty object')

  const keys: string[] = []
  let token: string | undefined
  let pages = 0
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'chunks/2/', MaxKeys: 2, ContinuationToken: token }))
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''))
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    pages++
  } while (token !== undefined)
  t.same(keys, ['chunks/2/0', 'chunks/2/1', 'chunks/2/2', 'chunks/2/3', 'chunks/2/4'], 'prefix listing in key order')
  t.equal(pages, 3, 'five keys two to a page')

  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0' }))
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0' }))
  t.pass('deleting a deleted key is not an error')
  const err = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'chunks/1/0_0' })).then(() => undefined, (e: unknown) => e)
  t.equal(nameOf(err), 'NoSuchKey', 'a deleted object is NoSuchKey')
  const multi = await client.send(new DeleteObjectsCommand({
    Bucket: bucket, Delete: { Objects: [0, 1, 2, 3, 4].map((i) => ({ Key: `chunks/2/${i}` })).concat([{ Key: 'never' }]) },
  }))
  t.equal(multi.Errors?.length ?? 0, 0, 'a multi-object delete, one key never there')
  const left = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
  t.same((left.Contents ?? []).map((o) => o.Key), ['other'], 'only the untouched object is left')
})

t.test('a bucket from testBucket is gone after its test, objects and all', { skip }, async (t) => {
  const client = s3Client(s3.target!)
  t.teardown(() => { client.destroy() })
  let bucket = ''
  await t.test('inner', async (t) => {
    bucket = await testBucket(t)
    t.match(bucket, /^[a-z0-9][a-z0-9-]{2,62}$/, 'a valid S3 bucket name')
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'x', Body: Buffer.from('x') }))
  })
  const err = await client.send(new HeadBucketCommand({ Bucket: bucket })).then(() => undefined, (e: unknown) => e)
  t.equal(nameOf(err), 'NotFound', 'HEAD of the removed bucket is 404')
})

t.test('the relay: a gateway that is down refuses, one that hangs answers nothing, and both come back', { skip }, async (t) => {
  const bucket = await testBucket(t, { create: true })
  const relay = await s3Relay(t, s3.target!)
  const client = s3Client(relay.target)
  t.teardown(() => { client.destroy() })
  const get = async (signal?: AbortSignal): Promise<string> =>
    (await body(await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'a' }), signal === undefined ? {} : { abortSignal: signal }))).toString()
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: Buffer.from('acknowledged') }))
  t.equal(await get(), 'acknowledged', 'through the relay')

  await relay.set('down')
  const refused = await get(AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e)
  t.equal((refused as { code?: string }).code, 'ECONNREFUSED', 'down: connection refused, at once')

  await relay.set('hang')
  const started = Date.now()
  const hung = await get(AbortSignal.timeout(500)).then(() => undefined, (e: unknown) => e)
  t.equal(nameOf(hung), 'AbortError', 'hang: only the timeout ends the request')
  t.ok(Date.now() - started >= 450, 'and it did wait for it')

  const pending = get()
  await new Promise((resolve) => setTimeout(resolve, 200))
  await relay.set('pass')
  t.equal(await pending, 'acknowledged', 'a request made while it hung completes once it flows again')
  t.equal(await get(), 'acknowledged', 'and new ones')
  // one before the outage (kept alive, reset by down), one per request made while it hung
  t.ok(relay.accepted() >= 3, `${relay.accepted()} connections accepted`)
})

t.test('a second start.sh on the running Ceph says so and starts nothing; another on its ports is refused', {
  // only the Ceph of CEPH_DIR's s3.env: start.sh must find it running, or it would start one
  skip: skip !== false ? skip
    : process.env['TSNFS_S3_URL'] !== undefined ? 'the gateway is TSNFS_S3_URL, not a Ceph of deploy/ceph'
    : existsSync(join(CEPH_DIR, 'ceph.conf')) ? false : `${CEPH_DIR} holds no Ceph of deploy/ceph`,
}, async (t) => {
  const port = new URL(s3.target!.endpoint).port || '80'
  const again = await exitOf(START, [CEPH_DIR, port])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /^ceph: already running under /)
  // the same ports for a second cluster: refused at the first check, before anything starts
  const dir = t.testdir({})
  const clash = await exitOf(START, [dir, port])
  t.equal(clash.code, 1, 'a step that fails exits 1')
  t.match(clash.stderr, /^ceph: port \d+ is already in use \(another Ceph\?/)
})

/** A TCP port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((resolve) => srv.close(() => { resolve() }))
  return port
}

t.test('the helper: no gateway skips with the reason, unless TSNFS_S3_REQUIRED=1 makes it a failure', async (t) => {
  const port = await closedPort()
  const url = `http://127.0.0.1:${port}`
  const base = { TSNFS_S3_URL: url, TSNFS_S3_KEYS: 'AK:SK' }
  t.same(await s3StatusOf(base), { reason: `no S3 gateway answers at ${url} (ECONNREFUSED)` }, 'a reason to skip')
  await t.rejects(s3StatusOf({ ...base, TSNFS_S3_REQUIRED: '1' }),
    { message: `TSNFS_S3_REQUIRED=1 (set by .ci/run after Ceph started) but no S3 gateway answers at ${url} (ECONNREFUSED)` }, 'a failure')
  t.same(await s3StatusOf({ TSNFS_S3_URL: url, TSNFS_S3_KEYS: 'no-colon' }), { reason: 'environment: TSNFS_S3_KEYS must be "ACCESS_KEY:SECRET_KEY"' })
  t.same(await s3StatusOf({ TSNFS_S3_URL: 'ftp://x', TSNFS_S3_KEYS: 'A:B' }), { reason: 'environment: TSNFS_S3_URL ftp://x is not http(s)' })
  const dir = t.testdir({})
  t.same(await s3StatusOf({ TSNFS_CEPH_DIR: dir }),
    { reason: `no S3 gateway: TSNFS_S3_URL is unset and ${join(dir, 's3.env')} is missing (start one: deploy/ceph/start.sh ${dir})` })
  const fileDir = t.testdir({ 's3.env': `# comment\nTSNFS_S3_URL=${url}\nTSNFS_S3_KEYS=A:B\n` })
  t.same(await s3StatusOf({ TSNFS_CEPH_DIR: fileDir }), { reason: `no S3 gateway answers at ${url} (ECONNREFUSED)` }, 's3.env is read, then probed')
  if (s3.target !== undefined) {
    const up = await s3StatusOf({ TSNFS_S3_URL: s3.target.endpoint, TSNFS_S3_KEYS: `${s3.target.accessKey}:${s3.target.secretKey}`, TSNFS_S3_REQUIRED: '1' })
    t.same(up, { target: { ...s3.target, region: 'us-east-1' } }, 'the running gateway, region defaulted')
  }
})

t.test('start.sh: usage errors, and a directory not its own is never wiped', async (t) => {
  const bad = await exitOf(START, ['/nonexistent-never', 'port'])
  t.equal(bad.code, 2, 'a port that is not a number')
  t.match(bad.stderr, /^usage: /)
  t.equal((await exitOf(START, [])).code, 2, 'no DIR')

  if ((await exitOf('sh', ['-c', 'command -v ceph-mon radosgw'])).code !== 0) {
    t.comment('Ceph is not installed: the refusal to wipe is not reached')
    return
  }
  const dir = t.testdir({ 'precious.txt': 'keep me' })
  const refused = await exitOf(START, [dir, '17480'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /is not empty and holds no cluster of ours; refusing to wipe it/)
  t.ok(existsSync(join(dir, 'precious.txt')), 'the file is still there')
})

t.test('stop.sh: a stale pid file naming another process leaves it alone; --wipe refuses a foreign directory', async (t) => {
  const dir = t.testdir({ 'ceph.conf': '[global]\n' })
  mkdirSync(join(dir, 'run'))
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => { sleeper.kill('SIGKILL') })
  writeFileSync(join(dir, 'run', 'mon.a.pid'), `${sleeper.pid}\n`)
  const stop = await exitOf(STOP, [dir])
  t.same(stop, { code: 0, stdout: '', stderr: '' }, 'nothing reported stopped')
  t.equal(sleeper.exitCode, null, 'the process is alive')
  t.ok(process.kill(sleeper.pid!, 0), 'and answers signal 0')
  t.notOk(existsSync(join(dir, 'run', 'mon.a.pid')), 'the stale pid file is removed')
  const wipe = await exitOf(STOP, [dir, '--wipe'])
  t.equal(wipe.code, 1)
  t.match(wipe.stderr, /holds no cluster of ours; not removed/)
  t.ok(existsSync(join(dir, 'ceph.conf')), 'still there')
})
