/*
 * The NFS calls an in-process server has answered, by procedure, from its
 * metrics: the FUSE tests count what a command through the mount cost.
 */
import type { ServerFixture } from '../helpers/server.ts'

/** NFS calls the server has answered so far, by procedure. */
export function calls(fx: ServerFixture): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of fx.server.renderMetrics().matchAll(/^tsnfs_rpc_calls_total\{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_(\w+)"\} (\d+)$/gm)) {
    out.set(m[1] ?? '', Number(m[2]))
  }
  return out
}

/** The calls made between two counts, by procedure (those that moved only). */
export function diff(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of b) if (v !== (a.get(k) ?? 0)) out[k] = v - (a.get(k) ?? 0)
  return out
}
