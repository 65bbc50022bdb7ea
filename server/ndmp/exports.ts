/*
 * The server's exports as NDMP serves them (NdmpContext.exports): one entry per export path, with
 * its open backend. A backup names its source by this path (FILESYSTEM). Where the backend has
 * a snapshot, a backup reads one (issue 16 §5), picked here per backend:
 *   - an engine export on a volume: a volume snapshot (O(1), the engine frozen around it), read
 *     through `.snapshot/NAME/` by SnapshotReadView and deleted when the backup ends; a volume
 *     without a snapshot store refuses it, and the backup reads live and says why;
 *   - a memory export: a frozen copy (vfs/memory/frozen-copy.ts: its metadata copied, its file
 *     chunks shared copy-on-write), released when the backup ends;
 *   - others (local): none; the backup reads live and says so.
 */
import { randomBytes } from 'node:crypto'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
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
      const snapshot = snapshotOf(vfs)
      out.push({ path: e.path, backend: e.backend, vfs, root: vfs.root(), ...(snapshot === undefined ? {} : { snapshot }) })
    }
    return out
  }
}

/** How a backup of `vfs` gets a consistent view of it, or undefined: it reads live. */
export function snapshotOf(vfs: Vfs): (() => Promise<NdmpSnapshot>) | undefined {
  if (vfs instanceof MemoryVfs) return () => Promise.resolve(frozenCopy(vfs))
  const ops = volumeSnapshotsOf(vfs)
  return ops === undefined ? undefined : () => volumeSnapshot(vfs, ops)
}

/** A frozen copy of a memory export, taken at once (synchronously: one instant of the tree). */
function frozenCopy(vfs: MemoryVfs): NdmpSnapshot {
  const copy = vfs.freeze()
  return {
    vfs: copy,
    root: copy.root(),
    name: 'frozen copy',
    note: `read from a frozen copy of the memory export taken at the start (${copy.size} objects; file data shared copy-on-write)`,
    release: () => {
      copy.release()
      return Promise.resolve()
    },
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
