/*
 * The server's exports as NDMP serves them (NdmpContext.exports): one entry per export path, with
 * its open backend. A backup names its source by this path (FILESYSTEM). An engine export on a
 * volume has a snapshot hook: the backup takes a volume snapshot (O(1), the engine frozen around
 * it), reads `.snapshot/NAME/` through SnapshotReadView and deletes the snapshot when it ends. A
 * volume without a snapshot store refuses the snapshot, and the backup reads live and says why;
 * other backends (local, memory) read live and say so.
 */
import { randomBytes } from 'node:crypto'
import type { Vfs } from '../../vfs/types.ts'
import type { BackendSet } from '../backends.ts'
import type { ExportTable } from '../exports/table.ts'
import { volumeSnapshotsOf } from '../volume-snapshots.ts'
import type { VolumeSnapshots } from '../volume-snapshots.ts'
import type { NdmpExport, NdmpSnapshot } from './service-types.ts'
import { SnapshotReadView } from './snapshot-view.ts'

export function ndmpExportsOf(table: ExportTable, backends: BackendSet): () => readonly NdmpExport[] {
  return () => {
    const out: NdmpExport[] = []
    const seen = new Set<string>()
    for (const e of table.all()) {
      if (seen.has(e.path)) continue
      const vfs = backends.get(e.id)
      if (vfs === undefined) continue
      seen.add(e.path)
      const ops = volumeSnapshotsOf(vfs)
      out.push({ path: e.path, backend: e.backend, vfs, root: vfs.root(), ...(ops === undefined ? {} : { snapshot: () => volumeSnapshot(vfs, ops) }) })
    }
    return out
  }
}

/** A snapshot of the volume under `vfs` for one backup, named ndmp-TIME-RANDOM, deleted by release(). */
async function volumeSnapshot(vfs: Vfs, ops: VolumeSnapshots): Promise<NdmpSnapshot> {
  const name = `ndmp-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`
  await ops.create(name)
  try {
    const dir = await vfs.lookup(vfs.root(), Buffer.from('.snapshot'))
    const snap = await vfs.lookup(dir.ref, Buffer.from(name))
    return { vfs: new SnapshotReadView(vfs, snap.ref), root: snap.ref, name, release: () => ops.delete(name) }
  } catch (err) {
    await ops.delete(name).catch(() => undefined)
    throw err
  }
}
