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
 * The factory also records the handle key stored in the cluster database
 * (`tsnfs cluster init` writes it): createServer serves with it, so every
 * server of the cluster mints the same handles (server/cluster-keys.ts).
 */
import { hostname } from 'node:os'
import { openClusterStores } from '../vfs/cluster/clients/open.ts'
import { parseClusterConfig } from '../vfs/cluster/clients/config.ts'
import { openClusterVfs } from '../vfs/cluster/open.ts'
import { readHandleKey } from '../vfs/cluster/init.ts'
import type { Vfs } from '../vfs/types.ts'
import type { Export } from './exports/table.ts'
import type { ClusterKeys } from './cluster-keys.ts'
import { clusterError } from './cluster-errors.ts'

export interface ClusterBackendContext {
  log?: { warn(msg: string): void; info?(msg: string): void }
  keys?: ClusterKeys
  /** Where credentials come from besides the credentials= file (process.env in the server). */
  env?: Readonly<Record<string, string | undefined>>
}

export async function openClusterBackend(exp: Export, ctx: ClusterBackendContext): Promise<Vfs> {
  const o = exp.entry.cluster
  if (o === undefined) throw new Error('backend=cluster needs meta= and data=')
  const cfg = await parseClusterConfig({ meta: o.meta, data: o.data, ...(o.credentials === undefined ? {} : { credentials: o.credentials }) }, ctx.env ?? process.env)
  const { db, store } = await openClusterStores(cfg, ctx.env ?? process.env)
  try {
    const key = await readHandleKey(db)
    const vfs = await openClusterVfs({
      db, store, exportPath: exp.path, exportId: exp.id, host: hostname(),
      ...(ctx.log === undefined ? {} : { log: ctx.log }),
    })
    ctx.keys?.set(exp.id, { key, meta: o.meta })
    return closingAlso(vfs, async () => {
      ctx.keys?.delete(exp.id)
      await Promise.allSettled([store.close(), db.close()])
    })
  } catch (err) {
    await Promise.allSettled([store.close(), db.close()])
    throw err
  }
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
        return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(clusterError(err))) : out
      }
    },
  })
}
