/*
 * The S3 service the cluster backend's tests use: Ceph's RADOS Gateway that
 * .ci/run starts with deploy/ceph/start.sh (127.0.0.1:7480, a fixed test
 * user), or any S3 service named by the environment:
 *   TSNFS_S3_URL      endpoint, e.g. http://127.0.0.1:7480
 *   TSNFS_S3_KEYS     "ACCESS_KEY:SECRET_KEY"
 *   TSNFS_S3_REGION   region for SigV4 (us-east-1 unless set)
 * Without TSNFS_S3_URL the values come from s3.env in the Ceph directory
 * (TSNFS_CEPH_DIR, /var/tmp/tsnfs-ceph by default), which start.sh writes.
 *
 * No gateway is not an error by itself: s3Status() gives the reason and tests
 * skip with it. But .ci/run sets TSNFS_S3_REQUIRED=1 once Ceph started, and
 * then a gateway that does not answer throws instead, so a Ceph that died in
 * the middle of a CI run fails the tests that need it rather than skipping them.
 */
import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  S3Client, CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand,
  ListObjectsV2Command, ListMultipartUploadsCommand, AbortMultipartUploadCommand,
} from '@aws-sdk/client-s3'

export interface S3Target {
  /** http(s)://host:port of the service (path-style bucket addressing). */
  endpoint: string
  region: string
  accessKey: string
  secretKey: string
}

export type S3Status = { target: S3Target; reason?: undefined } | { target?: undefined; reason: string }

type Env = Readonly<Record<string, string | undefined>>

export const DEFAULT_CEPH_DIR = '/var/tmp/tsnfs-ceph'
export const CEPH_DIR = process.env['TSNFS_CEPH_DIR'] ?? DEFAULT_CEPH_DIR
const PROBE_MS = 3000

/** KEY=VALUE lines (comments and blank lines skipped), as start.sh writes s3.env. */
function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line)
    if (m !== null) out.set(m[1]!, m[2]!.trim())
  }
  return out
}

function fromValues(url: string, keys: string | undefined, region: string | undefined, source: string): S3Target | string {
  const colon = keys?.indexOf(':') ?? -1
  if (keys === undefined || colon <= 0 || colon === keys.length - 1) {
    return `${source}: TSNFS_S3_KEYS must be "ACCESS_KEY:SECRET_KEY"`
  }
  try {
    const u = new URL(url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${source}: TSNFS_S3_URL ${url} is not http(s)`
  } catch {
    return `${source}: TSNFS_S3_URL ${url} is not a URL`
  }
  return {
    endpoint: url.replace(/\/+$/, ''),
    region: region !== undefined && region !== '' ? region : 'us-east-1',
    accessKey: keys.slice(0, colon),
    secretKey: keys.slice(colon + 1),
  }
}

/** The configured target, or why there is none (before any probe). */
function configured(env: Env): S3Target | string {
  const url = env['TSNFS_S3_URL']
  if (url !== undefined && url !== '') return fromValues(url, env['TSNFS_S3_KEYS'], env['TSNFS_S3_REGION'], 'environment')
  const dir = env['TSNFS_CEPH_DIR'] ?? DEFAULT_CEPH_DIR
  const file = join(dir, 's3.env')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return `no S3 gateway: TSNFS_S3_URL is unset and ${file} is missing (start one: deploy/ceph/start.sh ${dir})`
  }
  const values = parseEnvFile(text)
  const fileUrl = values.get('TSNFS_S3_URL')
  if (fileUrl === undefined) return `${file} has no TSNFS_S3_URL`
  return fromValues(fileUrl, values.get('TSNFS_S3_KEYS'), values.get('TSNFS_S3_REGION'), file)
}

/** Any HTTP answer means a gateway listens (an anonymous GET / is 200 on radosgw, 403 on AWS). */
async function answers(endpoint: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(PROBE_MS) })
    await res.arrayBuffer()
    return undefined
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code
    return `no S3 gateway answers at ${endpoint} (${cause ?? (err as Error).message})`
  }
}

/**
 * The gateway `env` names and whether it answers, or why there is none.
 * Throws (does not return a reason) when env has TSNFS_S3_REQUIRED=1 and
 * there is no usable gateway.
 */
export async function s3StatusOf(env: Env): Promise<S3Status> {
  const c = configured(env)
  const reason = typeof c === 'string' ? c : await answers(c.endpoint)
  if (reason === undefined && typeof c !== 'string') return { target: c }
  const why = reason ?? 'no S3 gateway'
  if (env['TSNFS_S3_REQUIRED'] === '1') {
    throw new Error(`TSNFS_S3_REQUIRED=1 (set by .ci/run after Ceph started) but ${why}`)
  }
  return { reason: why }
}

let cached: Promise<S3Status> | undefined

/** s3StatusOf(process.env), probed once per process. */
export function s3Status(): Promise<S3Status> {
  cached ??= s3StatusOf(process.env)
  return cached
}

/** The gateway, or undefined when none runs (see s3Status for the reason and TSNFS_S3_REQUIRED). */
export async function s3Target(): Promise<S3Target | undefined> {
  return (await s3Status()).target
}

/**
 * A client for the target. Checksums only where S3 requires them: the SDK's
 * default (since 3.729) sends streamed bodies as aws-chunked with a trailing
 * CRC32, which radosgw 16 (Debian 12's Ceph) rejects; buffered bodies pass
 * either way.
 */
export function s3Client(target: S3Target): S3Client {
  return new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKey, secretAccessKey: target.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  })
}

let counter = 0

function errorName(err: unknown): string {
  return (err as { name?: string }).name ?? ''
}

/** Delete every object and unfinished upload in `bucket`, then the bucket; a missing bucket is fine. */
export async function removeBucket(client: S3Client, bucket: string): Promise<void> {
  try {
    let token: string | undefined
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]))
      if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }))
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    for (const u of uploads.Uploads ?? []) {
      if (u.Key !== undefined && u.UploadId !== undefined) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))
      }
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }))
  } catch (err) {
    if (errorName(err) !== 'NoSuchBucket') throw err
  }
}

export interface TestBucketOptions {
  /** Create the bucket now (default: only the name; the code under test may create it). */
  create?: boolean
}

/**
 * A fresh bucket name for the running test (lower case, ≤ 63 characters, as
 * S3 requires), emptied and deleted at teardown whether or not it was created.
 * Needs a gateway: call it only when s3Target() gave one.
 */
export async function testBucket(t: Pick<Test, 'teardown'>, options: TestBucketOptions = {}): Promise<string> {
  const target = await s3Target()
  if (target === undefined) throw new Error(`testBucket: ${(await s3Status()).reason ?? 'no S3 gateway'}`)
  const name = `tsnfs-t-${process.pid}-${Date.now().toString(36)}-${counter++}`
  const client = s3Client(target)
  t.teardown(async () => {
    try {
      await removeBucket(client, name)
    } finally {
      client.destroy()
    }
  })
  if (options.create === true) await client.send(new CreateBucketCommand({ Bucket: name }))
  return name
}

/** Every key in `bucket`, in the gateway's (byte) order. */
export async function bucketKeys(target: S3Target, bucket: string): Promise<string[]> {
  const client = s3Client(target)
  try {
    const keys: string[] = []
    let token: string | undefined
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
      for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key)
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
    return keys
  } finally {
    client.destroy()
  }
}
