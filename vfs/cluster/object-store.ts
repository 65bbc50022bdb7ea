/*
 * File data as immutable objects (blocks of a slice): an S3 bucket
 * (vfs/cluster/clients/s3-store.ts, @aws-sdk/client-s3 against Ceph's RADOS
 * Gateway or any S3 service) or, for small installations, a table in the
 * metadata database (data=postgres). Objects are written once and never
 * changed, so any server may cache what it read without invalidation.
 */

export interface ObjectInfo {
  key: string
  size: number
  /** Milliseconds since the epoch when the store last wrote it. */
  mtimeMs: number
}

export interface ObjectStore {
  /** Store `data` under `key`; resolves once the store acknowledges it durable. */
  put(key: string, data: Buffer): Promise<void>
  /** `length` bytes from `offset` (a short object gives fewer). ENOENT-like errors throw ObjectMissing. */
  get(key: string, offset: number, length: number): Promise<Buffer>
  /** Delete; keys already gone are not an error. */
  delete(keys: readonly string[]): Promise<void>
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>
  /** Create the bucket (or table) if it is missing. */
  init(): Promise<void>
  /** "s3://bucket at http://host:port" or "postgres table tsnfs_block": for logs and `tsnfs cluster status`. */
  describe(): string
  close(): Promise<void>
}

/** The object is not in the store (a block the metadata references is gone: EIO above). */
export class ObjectMissing extends Error {
  readonly key: string
  constructor(key: string, options?: ErrorOptions) {
    super(`object ${key} is missing from the store`, options)
    this.name = 'ObjectMissing'
    this.key = key
  }
}

/** The store could not be reached or refused the request (after the adapter's own retries). */
export class ObjectStoreUnavailable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ObjectStoreUnavailable'
  }
}
