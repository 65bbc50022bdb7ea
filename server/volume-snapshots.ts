/*
 * Snapshots of a served volume (issue 14 item 6): create, list and delete, for the offline CLI
 * (cli/volume-snapshot.ts) and the server's admin channel; and the `.snapshot/SNAP/` view of an
 * engine export over a volume that keeps snapshots (vfs/snapdir).
 *
 * Create is ext4's and LVM's order: freeze the engine (its journal committed and checkpointed,
 * needs_recovery cleared, every answered write on the device), take the snapshot in the origin
 * layer (one table slot written and flushed: O(1), no data copied), thaw. The snapshot is then a
 * clean file system that opens read-only without replay. Delete marks the snapshot deleting,
 * durably, and frees its copies in the background.
 */
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import type { OpenEngineOptions } from '../vfs/engine/fs/assemble.ts'
import { SnapdirVfs } from '../vfs/snapdir/snapdir-vfs.ts'
import type { SnapshotEntry, SnapshotSource } from '../vfs/snapdir/snapdir-vfs.ts'
import type { Vfs } from '../vfs/types.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
import type { OriginDevice, SnapshotInfo } from '../vfs/volume/snapshot.ts'

export type { SnapshotInfo }

/** What create quiesces: EngineVfs (freeze/thaw as ext4_freeze). */
export interface Freezable {
  freeze(): Promise<void>
  thaw(): Promise<void>
}

/** A volume as these functions need it: its name (for messages) and its origin layer, if it keeps snapshots. */
export interface SnapshotVolume {
  readonly config: { readonly name: string }
  readonly origin?: OriginDevice
}

function originOf(v: SnapshotVolume): OriginDevice {
  if (v.origin === undefined) {
    throw new VolumeError('VOLUME_SNAPSHOT', `volume ${v.config.name} has no snapshot store (create it with --snapshot-store SIZE)`)
  }
  return v.origin
}

/**
 * Snapshot `name` of the volume now: `engine` (the file system on it, if open) frozen around the
 * O(1) snapshot, so the snapshot holds every change answered before and is a clean file system.
 * Without a store: VOLUME_SNAPSHOT "volume NAME has no snapshot store ...". A name taken, or 64
 * snapshots already: VOLUME_SNAPSHOT from the store.
 */
export async function createVolumeSnapshot(v: SnapshotVolume, name: string, engine?: Freezable): Promise<SnapshotInfo> {
  const origin = originOf(v)
  // One at a time per volume: a second freeze while frozen is refused, so creates queue instead.
  const run = (creating.get(origin) ?? Promise.resolve()).then(async () => {
    if (engine === undefined) return origin.createSnapshot(name)
    await engine.freeze()
    try {
      return await origin.createSnapshot(name)
    } finally {
      await engine.thaw()
    }
  })
  creating.set(origin, run.then(() => undefined, () => undefined))
  return await run
}

const creating = new WeakMap<OriginDevice, Promise<void>>()

/** Every snapshot in the store (live, deleting, invalid), oldest first. */
export function listVolumeSnapshots(v: SnapshotVolume): SnapshotInfo[] {
  return originOf(v).listSnapshots()
}

/**
 * Deletes snapshot `name`: durable when this resolves (a restart will not show it), its copies
 * freed in the background (the volume's whenIdle tells when). Its `.snapshot` handles turn ESTALE.
 */
export async function deleteVolumeSnapshot(v: SnapshotVolume, name: string): Promise<void> {
  await originOf(v).deleteSnapshot(name)
}

/** The live snapshots of `origin`, each opened as a read-only engine on its SnapshotDevice. */
export function snapshotSource(origin: OriginDevice, opts: OpenEngineOptions = {}): SnapshotSource {
  return {
    list: (): SnapshotEntry[] => origin.listSnapshots().filter((s) => s.state === 'live').map(({ id, name, created, seq }) => ({ id, name, created, seq })),
    open: (entry: SnapshotEntry): Promise<Vfs> => {
      const dev = origin.snapshot(entry.name)
      return openEngineOn(dev, { ...opts, readOnly: true }).catch(async (err: unknown) => {
        await dev.close()
        throw err
      })
    },
  }
}

/** A served volume's snapshot operations, as the admin channel calls them. */
export interface VolumeSnapshots {
  create(name: string): Promise<SnapshotInfo>
  list(): SnapshotInfo[]
  delete(name: string): Promise<void>
}

const served = new WeakMap<Vfs, VolumeSnapshots>()

/**
 * The snapshot operations of the volume an export's Vfs serves; undefined: not a volume export.
 * A volume without a store has them too: they refuse with VOLUME_SNAPSHOT "volume NAME has no
 * snapshot store ...".
 */
export function volumeSnapshotsOf(vfs: Vfs): VolumeSnapshots | undefined {
  return served.get(vfs)
}

/** Makes `vfs` (a Vfs over the export's, such as server/volume-swap.ts) answer volumeSnapshotsOf with `ops`. */
export function setVolumeSnapshots(vfs: Vfs, ops: VolumeSnapshots): void {
  served.set(vfs, ops)
}

export interface WrapOptions extends OpenEngineOptions {
  /** List `.snapshot` in the export root's READDIR (`snapdir=visible`). */
  snapdirVisible?: boolean
}

/**
 * The export's Vfs for an engine on volume `v`: the engine itself when the volume keeps no
 * snapshots, else the `.snapshot` view over it; either registered so volumeSnapshotsOf finds
 * its operations (create freezes this engine; delete closes the snapshot's file system).
 */
export function wrapSnapshots(engine: Vfs & Freezable, v: SnapshotVolume, opts: WrapOptions = {}): Vfs {
  const origin = v.origin
  if (origin === undefined) {
    served.set(engine, {
      create: (name) => createVolumeSnapshot(v, name, engine),
      list: () => listVolumeSnapshots(v),
      delete: (name) => deleteVolumeSnapshot(v, name),
    })
    return engine
  }
  const { snapdirVisible, ...engineOpts } = opts
  const view = new SnapdirVfs(engine, snapshotSource(origin, engineOpts), { visible: snapdirVisible ?? false })
  served.set(view, {
    create: (name) => createVolumeSnapshot(v, name, engine),
    list: () => listVolumeSnapshots(v),
    delete: async (name) => {
      await deleteVolumeSnapshot(v, name)
      await view.forget()
    },
  })
  return view
}
