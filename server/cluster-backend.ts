/*
 * backend=cluster (issue 17): the export's tree lives in a PostgreSQL-protocol
 * database (metadata) and an object store (data), shared by every tsnfs
 * server that exports it. The server opens the two stores from the export
 * line, hands them to ClusterVfs, and closes them when the backend closes
 * (ClusterVfs closes nothing it was given).
 *
 * Failures of the stores underneath become NFS3ERR_JUKEBOX or NFS3ERR_IO
 * (server/cluster-errors.ts), never SERVERFAULT.
 *
 * The factory also installs the handle key stored in the cluster database
 * (`tsnfs cluster init` writes it) for this export's handles, so every server
 * of the cluster mints the same handles; other exports keep the server's key
 * (server/cluster-keys.ts).
 *
 * A database that cannot be reached does not stop the server: the export
 * answers JUKEBOX until it can (server/cluster-pending.ts). Anything else
 * (no schema, another format, a path registered with another id) is refused
 * at once, as an operator's mistake that waiting would not mend.
 */
import { hostname } from 'node:os'
import { openClusterStores } from '../vfs/cluster/clients/open.ts'
import { parseClusterConfig } from '../vfs/cluster/clients/config.ts'
import { openClusterVfs } from '../vfs/cluster/open.ts'
import type { CacheMode } from '../vfs/cluster/meta/cache-mode.ts'
import { readHandleKey } from '../vfs/cluster/init.ts'
import type { Vfs } from '../vfs/types.ts'
import type { Export } from './exports/table.ts'
import type { ClusterKeys } from './cluster-keys.ts'
import { clusterError } from './cluster-errors.ts'
import { PendingClusterVfs } from './cluster-pending.ts'
import { isErrnoError } from '../vfs/errors.ts'

export interface ClusterBackendContext {
  log?: { warn(msg: string): void; info?(msg: string): void }
  keys?: ClusterKeys
  /** Where credentials come from besides the credentials= file (process.env in the server). */
  env?: Readonly<Record<string, string | undefined>>
  /** Pauses between attempts to reach a database that was down at opening (default 200 ms doubling to 5 s). */
  retry?: { minDelayMs?: number; maxDelayMs?: number }
}

/**
 * Session timing from the environment (TSNFS_CLUSTER_HEARTBEAT_MS, TSNFS_CLUSTER_STALE_MS): the
 * defaults (a heartbeat every 5 s, dead after 30 s silent) suit production; tests and operators
 * who want a dead server's state reclaimed sooner set them. Both at least 100 ms, at most a day.
 */
export function sessionTiming(env: Readonly<Record<string, string | undefined>>): { heartbeatMs?: number; staleMs?: number } {
  const ms = (name: string): number | undefined => {
    const v = env[name]
    if (v === undefined || v === '') return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 100 || n > 86_400_000) throw new Error(`${name} needs milliseconds from 100 to 86400000, got "${v}"`)
    return n
  }
  const heartbeatMs = ms('TSNFS_CLUSTER_HEARTBEAT_MS')
  const staleMs = ms('TSNFS_CLUSTER_STALE_MS')
  return { ...(heartbeatMs === undefined ? {} : { heartbeatMs }), ...(staleMs === undefined ? {} : { staleMs }) }
}

/**
 * TSNFS_CLUSTER_CACHE=notify|per-request overrides the cache mode the engine implies
 * (vfs/cluster/meta/cache-mode.ts): 'notify' for a YugabyteDB with LISTEN/NOTIFY enabled.
 */
export function cacheModeFromEnv(env: Readonly<Record<string, string | undefined>>): { cacheMode?: CacheMode } {
  const v = env['TSNFS_CLUSTER_CACHE']
  if (v === undefined || v === '') return {}
  if (v !== 'notify' && v !== 'per-request') throw new Error(`TSNFS_CLUSTER_CACHE needs notify or per-request, got "${v}"`)
  return { cacheMode: v }
}

export async function openClusterBackend(exp: Export, ctx: ClusterBackendContext): Promise<Vfs> {
  const o = exp.entry.cluster
  if (o === undefined) throw new Error('backend=cluster needs meta= and data=')
  const env = ctx.env ?? process.env
  const timing = { ...sessionTiming(env), ...cacheModeFromEnv(env) }
  const log = (msg: string): void => {
    ctx.log?.warn(`cluster ${exp.path}: ${msg}`)
  }
  const cfg = parseClusterConfig({ meta: o.meta, data: o.data, credentials: o.credentials })
  // Who holds the export's key: a backend reopened by a reload must not lose the new one's key when the old one closes.
  const owner = {}
  const open = async (): Promise<{ vfs: Vfs; key: Buffer }> => {
    const stores = await openClusterStores(cfg, env, { log })
    try {
      const key = await readHandleKey(stores.db)
      const vfs = await openClusterVfs({
        db: stores.db, store: stores.store, exportPath: exp.path, exportId: exp.id, host: hostname(), log, ...timing,
        ...(o.cacheBytes === undefined ? {} : { cacheBytes: o.cacheBytes }),
        ...(o.metaCacheBytes === undefined ? {} : { metaCacheBytes: o.metaCacheBytes }),
      })
      ctx.log?.info?.(`export ${exp.path}: cluster backend on ${stores.describe}`)
      return {
        key,
        vfs: closingAlso(vfs, async () => {
          ctx.keys?.release(exp.id, owner)
          await stores.close()
        }),
      }
    } catch (err) {
      await stores.close().catch(() => undefined)
      throw err
    }
  }
  let opened: { vfs: Vfs; key: Buffer }
  try {
    opened = await open()
  } catch (err) {
    const mapped = clusterError(err)
    // Unreachable (EAGAIN after clusterError): serve JUKEBOX and keep trying; anything else is refused now.
    if (!(isErrnoError(mapped) && mapped.code === 'EAGAIN')) throw err
    ctx.keys?.set(exp.id, owner, 'pending')
    // The key goes in the moment the backend does (activate), so no request sees one without the other.
    const reopen = async (): Promise<{ vfs: Vfs; activate: () => void }> => {
      const { vfs, key } = await open()
      return { vfs, activate: () => { ctx.keys?.set(exp.id, owner, key) } }
    }
    const pending = new PendingClusterVfs({ open: reopen, what: `export ${exp.path}`, ...(ctx.log === undefined ? {} : { log: ctx.log }), ...ctx.retry }, mapped)
    return closingAlso(pending, () => {
      ctx.keys?.release(exp.id, owner)
      return Promise.resolve()
    })
  }
  // Before the backend is handed out: its handles must verify by the first request.
  ctx.keys?.set(exp.id, owner, opened.key)
  return opened.vfs
}

/**
 * `vfs` whose close() also runs `after` (the stores the backend opened for
 * it), and whose failures from underneath (database, object store) become
 * errno answers (server/cluster-errors.ts).
 */
function closingAlso(vfs: Vfs, after: () => Promise<void>): Vfs {
  const close = async (): Promise<void> => {
    try {
      await vfs.close()
    } finally {
      await after()
    }
  }
  return new Proxy(vfs, {
    get(target, prop, receiver): unknown {
      if (prop === 'close') return close
      const v: unknown = Reflect.get(target, prop, receiver)
      if (typeof v !== 'function') return v
      const fn = v as (...a: unknown[]) => unknown
      return (...args: unknown[]): unknown => {
        const out = fn.apply(target, args)
        return out instanceof Promise ? out.catch((err: unknown) => {
          throw clusterError(err)
        }) : out
      }
    },
  })
}
