/*
 * The one entry point from a parsed configuration to live clients: the
 * server's export loader and `tsnfs cluster …` call this, and nothing else
 * outside vfs/cluster/clients/ names `pg` or the S3 SDK.
 */
import { describeConfig, loadSecrets, type ClusterConfig } from './config.ts'
import { PgDb, type PgDbOptions } from './pg-db.ts'
import { PgStore } from './pg-store.ts'
import { S3Store, type S3StoreOptions } from './s3-store.ts'
import { readSmallBlocks } from '../init.ts'
import type { ObjectStore } from '../object-store.ts'
import type { SqlDb } from '../sql.ts'
import { TieredStore } from '../tiered-store.ts'

export interface OpenOptions {
  log?: (msg: string) => void
  /** Told of a credentials file others can read. Default: `log`. */
  warn?: (msg: string) => void
  /** Create the object store's bucket (or table) if missing: `tsnfs cluster init`. Default false. */
  init?: boolean
  /** Run `SELECT 1` before returning, so a wrong URL or password fails here with a clear error. Default true. */
  check?: boolean
  /** Overrides for the database client (pool size, timeouts, isolation). */
  pg?: Omit<PgDbOptions, 'url' | 'password'>
  /**
   * Blocks of at most this many bytes in the database (data=s3): `tsnfs cluster
   * init --small-blocks` passes the value it is about to record. Default: the
   * database's setting (0 with `check: false`, which reads nothing).
   */
  smallBlocks?: number
  /** Overrides for the S3 client (timeouts, tries). */
  s3?: Omit<S3StoreOptions, 'bucket' | 'endpoint' | 'region' | 'forcePathStyle' | 'prefix' | 'accessKeyId' | 'secretAccessKey'>
}

export interface ClusterStores {
  db: SqlDb
  store: ObjectStore
  /** "meta postgres://u@h:5432/fs, data s3://bucket/ at http://h:7480": no secrets. */
  describe: string
  /** Close the store, then the database. */
  close(): Promise<void>
}

export async function openClusterStores(cfg: ClusterConfig, env: Readonly<Record<string, string | undefined>>, opts: OpenOptions = {}): Promise<ClusterStores> {
  const log = opts.log
  const secrets = await loadSecrets(cfg, env, opts.warn ?? log)
  const db = new PgDb({
    ...opts.pg,
    ...(log === undefined ? {} : { log }),
    url: cfg.meta,
    ...(secrets.metaPassword === undefined ? {} : { password: secrets.metaPassword }),
  })
  let store: ObjectStore | undefined
  try {
    if (opts.check !== false) await db.query('SELECT 1')
    const d = cfg.data
    if (d.kind === 'postgres') {
      store = new PgStore(db)
    } else {
      const s3 = new S3Store({
        ...opts.s3,
        bucket: d.bucket,
        prefix: d.prefix,
        region: d.region,
        forcePathStyle: d.pathStyle,
        ...(d.endpoint === undefined ? {} : { endpoint: d.endpoint }),
        ...(secrets.s3AccessKey === undefined ? {} : { accessKeyId: secrets.s3AccessKey }),
        ...(secrets.s3SecretKey === undefined ? {} : { secretAccessKey: secrets.s3SecretKey }),
      })
      store = s3
      const small = opts.smallBlocks ?? (opts.check === false ? 0 : await readSmallBlocks(db))
      if (small > 0) store = new TieredStore({ small: new PgStore(db), large: s3, maxSmall: small })
    }
    if (opts.init === true) await store.init()
  } catch (err) {
    await store?.close().catch(() => undefined)
    await db.close().catch(() => undefined)
    throw err
  }
  const s = store
  return {
    db,
    store: s,
    describe: describeConfig(cfg),
    close: async () => {
      await s.close()
      await db.close()
    },
  }
}
