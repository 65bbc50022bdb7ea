/*
 * A former primary rejoining as a standby (issue 15 §5; README.md "Roles and
 * takeover"). Its state directory still holds what it served: each export's
 * id map (vids of its own epoch bound to its backend's objects) and change
 * log. After another node took over, the part of that history the new
 * primary never received is a divergent tail, and the old change log's
 * sequence numbers mean nothing to the new primary (its log started afresh
 * at its takeover). So rejoining:
 *
 *   1. marks every export as needing a full resync (the mark the standby
 *      writes on divergence): HELLO reports need_resync and the new
 *      primary's sender runs resync.ts, which makes the tree match the new
 *      primary's in the shared id space. The divergent tail goes there:
 *      names the new primary does not list are removed, files whose size or
 *      mtime differ get the primary's data. What is lost is only what the
 *      old primary acknowledged as UNSTABLE after the last position the
 *      standby acknowledged: NFS allows it (RFC 1813 §3.3.7, the new
 *      primary's write verifier differs, so clients re-send those writes).
 *      Anything it acknowledged as stable in sync mode waited for every
 *      standby in the sync set, so it is on the new primary already;
 *   2. removes the old change log, so when this node takes over again its
 *      log starts afresh instead of continuing the old numbering (a standby
 *      holding a position in the new primary's log would otherwise be sent
 *      the old tail as if it followed);
 *   3. only then records the role as standby.
 *
 * Each step is durable before the next, so a crash anywhere in between
 * leaves the node still primary or fenced, and the rejoin runs again.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../logger.ts'
import type { NodeState } from './node-state.ts'
import { writeAtomic } from './node-state.ts'

/** The name of an export's resync mark in STATE-DIR/replication: present means the export needs a full resync. */
export function resyncMarkName(exportId: number): string {
  return `resync-${String(exportId)}`
}

/** Writes an export's resync mark durably (`why` is for an operator reading the file). */
export async function writeResyncMark(replicationDir: string, exportId: number, why: string): Promise<void> {
  await writeAtomic(replicationDir, resyncMarkName(exportId), `${why}\n`)
}

/**
 * Turns a former primary's (or a fenced node's) state into a standby's:
 * every export marked for a full resync, its old change log removed, the
 * role standby. A node already a standby is left alone.
 */
export async function rejoinAsStandby(state: NodeState, exportIds: readonly number[], log: Logger): Promise<void> {
  const me = state.get()
  if (me.role === 'standby') return
  for (const id of exportIds) {
    await writeResyncMark(state.dir, id, `rejoin: a former ${me.role} at epoch ${String(me.epoch)}`)
  }
  for (const id of exportIds) {
    await rm(join(state.dir, String(id), 'log'), { recursive: true, force: true })
  }
  await state.update({ role: 'standby' })
  log.warn({ was: me.role, epoch: me.epoch.toString(), exports: exportIds.length }, 'replication: rejoined as a standby; every export waits for a full resync from the primary')
}
