/*
 * Cluster file systems for the metadata tests: a fresh PostgreSQL database
 * per file system (test/helpers/postgres.ts), data=postgres (blocks in
 * tsnfs_block), and any number of "servers" (ClusterVfs instances, each
 * with its own connection pool, session and change feed) on it.
 */
import pg from 'pg'
import { createDatabase, PG_ADMIN_URL } from '../../helpers/postgres.ts'
import { PgDb } from '../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../vfs/cluster/clients/pg-store.ts'
import type { ClusterVfs } from '../../../vfs/cluster/cluster-vfs.ts'
import { initCluster } from '../../../vfs/cluster/init.ts'
import { openClusterVfs } from '../../../vfs/cluster/open.ts'
import type { SqlDialect } from '../../../vfs/cluster/sql.ts'
import type { CacheMode } from '../../../vfs/cluster/meta/cache-mode.ts'
import { checkedDb } from './statement-check.ts'

export interface Server {
  vfs: ClusterVfs
  db: PgDb
}

export interface ServerOptions {
  onRemoteChange?: (inodes: bigint[] | 'all') => void
  /** Default 60 s, so heartbeats do not disturb round-trip counts. */
  heartbeatMs?: number
  staleMs?: number
  /** Force the engine (default: asked of the database, PostgreSQL here). */
  dialect?: SqlDialect
  /** Refuse statements CockroachDB refuses (statement-check.ts) before they reach PostgreSQL. */
  cockroachRule?: boolean
  /** With cockroachRule: let notifications through (PostgreSQL's statement forms need them). */
  allowNotify?: boolean
  /** Force how cached metadata is kept current (default: by the dialect, meta/cache-mode.ts). */
  cacheMode?: CacheMode
}

export interface Cluster {
  url: string
  /** Another server on this file system; closed by close(). */
  server(opts?: ServerOptions): Promise<Server>
  /** Close every server, then drop the database. */
  close(): Promise<void>
}

/*
 * An initialized file system to copy: CREATE DATABASE ... TEMPLATE takes a fifth of the time
 * of creating the schema again, which keeps a file of many subtests under its time budget.
 * Copies share the template's handle key; each is still a file system of its own.
 */
let template: Promise<{ name: string; drop: () => Promise<void> }> | undefined
let copies = 0
const drops = new Set<Promise<void>>()

async function makeTemplate(): Promise<{ name: string; drop: () => Promise<void> }> {
  const database = await createDatabase()
  const db = new PgDb({ url: database.url, max: 2 })
  await initCluster(db, { data: 'postgres' })
  await new PgStore(db).init()
  await db.close()
  return database
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Drop the copies and the template (call from the test file's teardown). */
export async function dropTemplate(): Promise<void> {
  await Promise.all([...drops])
  drops.clear()
  const tp = template
  template = undefined
  if (tp !== undefined) await (await tp).drop()
}

async function copyOfTemplate(): Promise<{ url: string; drop: () => Promise<void> }> {
  template ??= makeTemplate()
  const tp = await template
  const name = `${tp.name}_c${copies++}`
  await admin(async (c) => {
    await c.query(`CREATE DATABASE ${name} TEMPLATE ${tp.name}`)
    // Tests do not crash PostgreSQL, so its commits need not wait for the disk: on this shared
    // 2-core machine an fsync per create is most of a test's time. Every statement and lock is
    // unchanged; only the WAL flush at commit is deferred.
    await c.query(`ALTER DATABASE ${name} SET synchronous_commit = off`)
  })
  const u = new URL(PG_ADMIN_URL)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    drop: () => admin(async (c) => { await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }),
  }
}

export async function newCluster(): Promise<Cluster> {
  const database = await copyOfTemplate()
  const servers: (Server & { close: () => Promise<void> })[] = []
  return {
    url: database.url,
    async server(opts = {}) {
      const db = new PgDb({ url: database.url, max: 6 })
      const vfs = await openClusterVfs({
        db: opts.cockroachRule === true ? checkedDb(db, { allowNotify: opts.allowNotify === true }) : db, store: new PgStore(db), exportPath: '/shared', exportId: 7, host: `test-${servers.length}`,
        heartbeatMs: opts.heartbeatMs ?? 60_000,
        ...(opts.staleMs === undefined ? {} : { staleMs: opts.staleMs }),
        ...(opts.dialect === undefined ? {} : { dialect: opts.dialect }),
        ...(opts.cacheMode === undefined ? {} : { cacheMode: opts.cacheMode }),
        ...(opts.onRemoteChange === undefined ? {} : { onRemoteChange: opts.onRemoteChange }),
      })
      const s = { vfs, db, close: vfs.close.bind(vfs) }
      servers.push(s)
      return s
    },
    async close() {
      for (const s of servers.splice(0)) {
        await s.close()
        await s.db.close()
      }
      // Dropped in the background (a drop takes as long as a subtest): dropTemplate waits for them.
      drops.add(database.drop())
    },
  }
}

/** A Vfs whose close() also closes its database pool and drops the database (the conformance suite closes each). */
export async function standaloneVfs(opts: ServerOptions = {}): Promise<ClusterVfs> {
  const c = await newCluster()
  const { vfs } = await c.server(opts)
  vfs.close = () => c.close()
  return vfs
}

/**
 * Counts the database round trips of single operations on one server: `measure(op, fn)` returns
 * fn's count and keeps it in `rows` (the table the round-trip tests print). The batched counters
 * (inodes each second, bytes when idle) go out on a timer: what is pending is sent first, so none
 * of it lands inside the operation counted (it did under load).
 */
export function roundTripMeter(vfs: ClusterVfs, db: PgDb): { rows: [string, number][]; measure: (op: string, fn: () => Promise<unknown>) => Promise<number> } {
  const rows: [string, number][] = []
  const measure = async (op: string, fn: () => Promise<unknown>): Promise<number> => {
    await vfs.flushCounters()
    const before = db.stats().roundTrips
    await fn()
    const n = db.stats().roundTrips - before
    rows.push([op, n])
    return n
  }
  return { rows, measure }
}
