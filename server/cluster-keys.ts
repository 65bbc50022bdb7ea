/*
 * The handle key of a server with cluster exports (issue 17 §3). NFSv3 lets a
 * client send any handle to any server of the cluster (after a failover, or
 * through a load balancer), so every server must mint and accept the same
 * bytes: the key is the one in the cluster database, not the state
 * directory's handle.key. Kept apart from cluster-backend.ts so the server
 * loads the database and S3 clients only when an export uses them.
 */
import type { Export } from './exports/table.ts'

/** What the cluster factory learned of each export's database, for the handle key check. */
export interface ClusterKeyRecord {
  key: Buffer
  /** The meta= URL (no password: the export parser refuses one), for error messages. */
  meta: string
}

/** Export id → the handle key its cluster database holds; filled by openClusterBackend. */
export type ClusterKeys = Map<number, ClusterKeyRecord>

/**
 * The handle key for a server whose exports include cluster exports: the one
 * key all their databases share. Null when there are none (the state
 * directory's key serves). Two databases with different keys are two file
 * systems whose handles could not be told apart safely: refused at start.
 */
export function clusterHandleKey(keys: ClusterKeys, exports: readonly Export[]): Buffer | null {
  let first: { key: Buffer; path: string; meta: string } | null = null
  for (const e of exports) {
    const k = keys.get(e.id)
    if (k === undefined) continue
    if (first === null) {
      first = { key: k.key, path: e.path, meta: k.meta }
      continue
    }
    if (!first.key.equals(k.key)) {
      throw new Error(
        `cluster exports ${first.path} (meta=${first.meta}) and ${e.path} (meta=${k.meta}) have different handle keys: ` +
          'every cluster export of one server must be on the same cluster database',
      )
    }
  }
  return first?.key ?? null
}

