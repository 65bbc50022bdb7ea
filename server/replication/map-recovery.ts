/*
 * A primary's id map kept in step with its change log (issue 15 item 8).
 * The replicating layer hands each change's id map edits (a new object's
 * bind, a removed one's unbind) to the change log with the change, and a
 * stable reply waits for the log's fdatasync only: the map's own records are
 * written later, at a checkpoint. So after a crash the map may lack binds of
 * changes the log holds, and clients hold handles with those vids (RFC 1813
 * §3.3.7, §3.3.8: a stable reply's effects survive the server).
 *
 * recoverMap() runs at start, before the layer serves: it redoes the edits
 * of every record after the map's last checkpoint, in log order (redoing one
 * the map already has changes nothing), then checkpoints. checkpointMap()
 * records that the map holds every edit appended so far and makes it
 * durable; the change log calls it before deleting any segment (trim,
 * retention), since those records may be the only copy of some edits.
 *
 * Why log.lastSeq() is a safe checkpoint: the layer calls map.bind() before
 * it appends the change, synchronously, so at any point between two turns of
 * the event loop the map in memory holds the edits of every change appended.
 * (An unbind a RENAME makes before its append lands before the checkpoint and
 * again after it: redone, it changes nothing.)
 */
import type { IdMap } from '../../vfs/replica/id-map.ts'
import type { ChangeLog } from './change-log.ts'

/** Makes the map durable with every edit of the changes appended to `log` so far. */
export async function checkpointMap(map: IdMap, log: ChangeLog): Promise<void> {
  map.logged(log.lastSeq())
  await map.flush()
}

/** Redoes the edits logged after the map's last checkpoint (at start); returns how many. */
export async function recoverMap(map: IdMap, log: ChangeLog): Promise<number> {
  const last = log.lastSeq()
  const from = map.loggedThrough() ?? log.firstSeq() - 1n
  let redone = 0
  if (from < last) {
    await log.mapEdits(from, (_seq, edits) => {
      for (const e of edits) map.recover(e)
      redone += edits.length
    })
  }
  // A checkpoint past the log's end: the log lost an unsynced tail (no reply waited for it) and
  // numbers its next records from its end again, so the checkpoint comes back to it.
  map.logged(last, from > last)
  await map.flush()
  return redone
}
