/*
 * Opening the cluster backend for one export: check the database's format,
 * register the export's path and id (every server must give one path the
 * same id, since handles carry it), make this server's session and FileData,
 * and follow the change feed (on an engine that has one: meta/cache-mode.ts).
 */
import { hostname } from 'node:os'
import { metaCacheBounds } from './caches.ts'
import { ClusterVfs } from './cluster-vfs.ts'
import { createFileData } from './data/file-data.ts'
import { reclaimSession } from './data/reclaim.ts'
import { checkFormat } from './init.ts'
import { registerExport } from './meta/exports.ts'
import { releaseQueued } from './meta/delfile.ts'
import { cacheModeOf, type CacheMode } from './meta/cache-mode.ts'
import { Session } from './meta/session.ts'
import type { ObjectStore } from './object-store.ts'
import { CHANGE_CHANNEL } from './schema.ts'
import { detectDialect, type SqlDb, type SqlDialect } from './sql.ts'

export interface OpenClusterOptions {
  db: SqlDb
  store: ObjectStore
  exportPath: string
  exportId: number | bigint
  log?: (msg: string) => void
  /** Shown in `tsnfs cluster status`; default os.hostname(). */
  host?: string
  heartbeatMs?: number
  staleMs?: number
  /** The engine; asked of the database (`SELECT version()`) unless given (tests force one on PostgreSQL). */
  dialect?: SqlDialect
  /**
   * 'notify' (LISTEN/NOTIFY) or 'per-request' (read the rows each request: engines without
   * notifications). Default by the dialect: PostgreSQL notifies, CockroachDB and YugabyteDB
   * validate per request (YugabyteDB v2025.2.3+ with LISTEN/NOTIFY enabled may be given 'notify').
   */
  cacheMode?: CacheMode
  /** Told of the inodes other servers changed (tests measure notification latency with it). */
  onRemoteChange?: (inodes: bigint[] | 'all') => void
  /** The data block cache's byte limit (the export's cache=; default 256 MiB). */
  cacheBytes?: number
  /** The metadata caches' byte limit, nodes, names and slice lists together (the export's metacache=; caches.ts). */
  metaCacheBytes?: number
}

export async function openClusterVfs(opts: OpenClusterOptions): Promise<ClusterVfs> {
  const { db, store } = opts
  await checkFormat(db)
  const dialect = opts.dialect ?? await detectDialect(db)
  const mode = opts.cacheMode ?? cacheModeOf(dialect)
  if (dialect !== 'postgresql') opts.log?.(`cluster: ${dialect}: changes run as single-table statements in one transaction`)
  if (mode === 'per-request') opts.log?.(`cluster: ${dialect}: no change notifications; metadata is read per request, not cached`)
  await registerExport(db, opts.exportPath, BigInt(opts.exportId))
  // The data half is made before the session so the stale sweep can use it; the session id
  // is chosen first because both tag their rows with it.
  const session = await Session.start(db, {
    host: opts.host ?? hostname(),
    info: `export ${opts.exportPath}`,
    ...(opts.heartbeatMs === undefined ? {} : { heartbeatMs: opts.heartbeatMs }),
    ...(opts.staleMs === undefined ? {} : { staleMs: opts.staleMs }),
    ...(opts.log === undefined ? {} : { log: opts.log }),
    onStale: async (sid) => {
      // The dead server's unfinished uploads, then whatever it removed but did not release.
      await reclaimSession(db, store, sid)
      await releaseQueued(db, data)
    },
  })
  const bounds = metaCacheBounds(opts.metaCacheBytes)
  const data = createFileData({
    db, store, sid: session.sid, notify: mode === 'notify', sliceCacheBytes: bounds.slices,
    // The data half committed sizes and times this server's cache holds.
    onChanged: (inodes, vers) => { vfs.changedHere(inodes, vers) },
    ...(opts.log === undefined ? {} : { log: opts.log }),
    ...(opts.cacheBytes === undefined ? {} : { cacheBytes: opts.cacheBytes }),
  })
  const vfs: ClusterVfs = new ClusterVfs({
    db, data, sid: session.sid, session, dialect, cacheMode: mode, metaLimits: bounds,
    ...(opts.log === undefined ? {} : { log: opts.log }),
    ...(opts.onRemoteChange === undefined ? {} : { onRemoteChange: opts.onRemoteChange }),
  })
  try {
    if (mode === 'notify') await vfs.listen(CHANGE_CHANNEL)
  } catch (err) {
    await vfs.close()
    throw err
  }
  return vfs
}
