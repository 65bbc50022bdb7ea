/*
 * ObjectStore on @aws-sdk/client-s3: any S3 service, Ceph's RADOS Gateway in
 * the tests. Blocks are immutable objects; reads are ranged GETs.
 *
 * Bounded in time: connecting (connectTimeoutMs), each HTTP exchange
 * (requestTimeoutMs) and each operation with all its SDK retries
 * (operationTimeoutMs, an AbortSignal) are bounded, and the SDK makes at most
 * maxAttempts tries. A store that cannot be reached gives
 * ObjectStoreUnavailable within seconds, never a hang; a missing key gives
 * ObjectMissing.
 *
 * Checksums: SDK releases since 3.729 add CRC32 trailers (aws-chunked bodies)
 * to every upload by default, which gateways older than AWS's change (Ceph
 * Pacific, MinIO before 2024) reject; we ask for checksums only where the API
 * requires them. DeleteObjects requires Content-MD5 on such gateways
 * (S3 API reference, DeleteObjects: "Content-MD5 ... required"), so a small
 * middleware adds it.
 */
import { createHash } from 'node:crypto'
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3'
import { ObjectMissing, ObjectStoreUnavailable, type ObjectInfo, type ObjectStore } from '../object-store.ts'

/** Largest range one get may ask for: a whole chunk (vfs/cluster/schema.ts CHUNK_SIZE). */
export const MAX_GET = 64 * 1024 * 1024
/** S3 DeleteObjects takes at most 1000 keys (S3 API reference, DeleteObjects). */
const DELETE_BATCH = 1000

export interface S3StoreOptions {
  bucket: string
  /** http://host:port for radosgw or MinIO; AWS's own endpoint when absent. */
  endpoint?: string
  region?: string
  /** Bucket in the path (http://host/bucket/key), as gateways without wildcard DNS need. */
  forcePathStyle?: boolean
  /** Every key is stored under this prefix ("fs1/"), so one bucket may hold several file systems. */
  prefix?: string
  accessKeyId?: string
  secretAccessKey?: string
  /** Tries per request, the first included (SDK standard retry mode); default 3. */
  maxAttempts?: number
  /** TCP (and TLS) connect bound per try; default 3000 ms. */
  connectTimeoutMs?: number
  /** One HTTP exchange; default 30000 ms (a 4 MiB block on a slow link). */
  requestTimeoutMs?: number
  /** The whole operation, retries included; default 60000 ms. */
  operationTimeoutMs?: number
  /** Keys per ListObjectsV2 page (S3's maximum, 1000, by default); tests use a small one. */
  pageSize?: number
  /** Keys per DeleteObjects request (at most 1000, the default); tests use a small one. */
  deleteBatch?: number
  /** Concurrent connections to the store. */
  maxSockets?: number
}

export class S3Store implements ObjectStore {
  private readonly s3: S3Client
  private readonly bucket: string
  private readonly prefix: string
  private readonly where: string
  private readonly pageSize: number
  private readonly deleteBatch: number
  private readonly operationTimeoutMs: number

  constructor(opts: S3StoreOptions) {
    this.bucket = opts.bucket
    this.prefix = opts.prefix ?? ''
    this.pageSize = Math.min(1000, Math.max(1, opts.pageSize ?? 1000))
    this.deleteBatch = Math.min(DELETE_BATCH, Math.max(1, opts.deleteBatch ?? DELETE_BATCH))
    this.operationTimeoutMs = opts.operationTimeoutMs ?? 60_000
    this.where = `s3://${opts.bucket}/${this.prefix} at ${opts.endpoint ?? 'AWS'}`
    const credentials = opts.accessKeyId !== undefined && opts.secretAccessKey !== undefined
      ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
      : undefined
    this.s3 = new S3Client({
      region: opts.region ?? 'us-east-1',
      ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      ...(credentials === undefined ? {} : { credentials }),
      maxAttempts: opts.maxAttempts ?? 3,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 3000,
        requestTimeout: opts.requestTimeoutMs ?? 30_000,
        throwOnRequestTimeout: true,
        httpAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 32 },
        httpsAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 32 },
      },
    })
    this.s3.middlewareStack.add((next, context) => async (args) => {
      const req = args.request as { headers?: Record<string, string>; body?: unknown }
      if (context.commandName === 'DeleteObjectsCommand' && req.headers !== undefined && typeof req.body === 'string') {
        req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64')
      }
      return next(args)
    }, { step: 'build', name: 'tsnfsDeleteContentMd5' })
  }

  async init(): Promise<void> {
    try {
      await this.send('init', (signal) => this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal }))
      return
    } catch (err) {
      if (!(err instanceof ObjectMissing)) throw err
    }
    try {
      await this.send('init', (signal) => this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }), { abortSignal: signal }))
    } catch (err) {
      // Another server created it between our HEAD and our CREATE.
      if (!(err instanceof ObjectStoreUnavailable && /BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(err.message))) throw err
    }
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.send(`put ${key}`, (signal) => this.s3.send(new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.prefix + key,
      Body: data,
      ContentLength: data.length,
    }), { abortSignal: signal }), key)
  }

  async get(key: string, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`object offset ${offset} is not a non-negative integer`)
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_GET) throw new RangeError(`object read of ${length} bytes (0..${MAX_GET})`)
    if (length === 0) {
      // No empty Range exists; a HEAD still tells a missing object from a present one.
      await this.send(`get ${key}`, (signal) => this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal: signal }), key)
      return Buffer.alloc(0)
    }
    return this.send(`get ${key}`, async (signal) => {
      let res
      try {
        res = await this.s3.send(new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Range: `bytes=${offset}-${offset + length - 1}`,
        }), { abortSignal: signal })
      } catch (err) {
        // 416: the range starts at or past the end; the object is there, the read is short (empty).
        if (err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 416 || err.name === 'InvalidRange')) return Buffer.alloc(0)
        throw err
      }
      const body = res.Body
      if (body === undefined) return Buffer.alloc(0)
      // A store that sends more than the range asked for is refused before the bytes are kept.
      if (res.ContentLength !== undefined && res.ContentLength > length) {
        throw new ObjectStoreUnavailable(`${this.where}: get ${key} answered ${res.ContentLength} bytes for a ${length}-byte range`)
      }
      const bytes = await body.transformToByteArray()
      if (bytes.length > length) throw new ObjectStoreUnavailable(`${this.where}: get ${key} answered ${bytes.length} bytes for a ${length}-byte range`)
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    }, key)
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += this.deleteBatch) {
      const batch = keys.slice(i, i + this.deleteBatch)
      const res = await this.send('delete', (signal) => this.s3.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((k) => ({ Key: this.prefix + k })), Quiet: true },
      }), { abortSignal: signal }))
      // Quiet mode lists only failures; a key already gone is not one (S3 reports deleting it as success).
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey')
      if (failed.length > 0) {
        const first = failed[0]
        throw new ObjectStoreUnavailable(`${this.where}: delete failed for ${failed.length} of ${batch.length} keys (first ${first?.Key ?? '?'}: ${first?.Code ?? '?'} ${first?.Message ?? ''})`)
      }
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined
    do {
      const page = await this.send('list', (signal) => this.s3.send(new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.prefix + prefix,
        MaxKeys: this.pageSize,
        ...(token === undefined ? {} : { ContinuationToken: token }),
      }), { abortSignal: signal }))
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue
        yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 }
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
  }

  describe(): string {
    return this.where
  }

  close(): Promise<void> {
    this.s3.destroy()
    return Promise.resolve()
  }

  /**
   * One operation under the overall time bound, its errors translated:
   * 404 on an object → ObjectMissing; anything else the store said or
   * could not say → ObjectStoreUnavailable naming the store and the code.
   */
  private async send<T>(what: string, op: (signal: AbortSignal) => Promise<T>, key?: string): Promise<T> {
    const signal = AbortSignal.timeout(this.operationTimeoutMs)
    try {
      return await op(signal)
    } catch (err) {
      if (err instanceof ObjectMissing || err instanceof ObjectStoreUnavailable) throw err
      if (err instanceof S3ServiceException) {
        const status = err.$metadata.httpStatusCode
        if (err.name === 'NoSuchKey' || err.name === 'NoSuchBucket' || err.name === 'NotFound' || status === 404) {
          if (key !== undefined && err.name !== 'NoSuchBucket') throw new ObjectMissing(key, { cause: err })
          if (what === 'init') throw new ObjectMissing(this.bucket, { cause: err })
        }
        throw new ObjectStoreUnavailable(`${this.where}: ${what}: ${err.name} (HTTP ${status ?? '?'}) ${err.message}`, { cause: err })
      }
      const e = err as { name?: unknown; code?: unknown; message?: unknown }
      const code = typeof e.code === 'string' ? ` (${e.code})` : ''
      const name = typeof e.name === 'string' ? e.name : 'Error'
      const message = typeof e.message === 'string' ? e.message : String(err)
      const reason = signal.aborted ? `no answer within ${this.operationTimeoutMs} ms` : `${name}${code}: ${message}`
      throw new ObjectStoreUnavailable(`${this.where}: ${what}: ${reason}`, { cause: err })
    }
  }
}
