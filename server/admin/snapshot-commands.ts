/*
 * The admin commands on a served volume's snapshots (issue 14 item 6): snapshot-create,
 * snapshot-list, snapshot-delete. Create freezes the engine serving the volume around the O(1)
 * copy-on-write snapshot (server/volume-snapshots.ts), so the snapshot is a clean file system
 * holding every change answered before it; the export's `.snapshot/` view follows at once.
 * snapshot-export writes one snapshot as a linear image file (vfs/volume/image-export.ts) while
 * the volume serves: only this process holds the store's index as copies are made, so a reader
 * of the disks beside it could take an origin chunk a copy has just replaced.
 */
import { isAbsolute } from 'node:path'
import { snapshotSourceOf, writeImage } from '../../vfs/volume/image-export.ts'
import { VolumeError } from '../../vfs/volume/layer.ts'
import type { Logger } from '../logger.ts'
import type { VolumeRegistry } from '../volume-registry.ts'
import type { VolumeSnapshots } from '../volume-snapshots.ts'
import type { AdminCommands } from './commands.ts'
import { stringField } from './commands.ts'
import type { AdminRequest } from './protocol.ts'
import { AdminError } from './protocol.ts'
import { served } from './volume-commands.ts'

function snapshotsOf(volumes: VolumeRegistry, req: AdminRequest): { name: string; snapshots: VolumeSnapshots } {
  const { sv, v } = served(volumes, req)
  // Set with the engine; a volume whose engine has not opened yet has nothing to snapshot.
  if (sv.snapshots === null) throw new VolumeError('VOLUME_SNAPSHOT', `volume ${v.config.name} is not serving yet`)
  return { name: v.config.name, snapshots: sv.snapshots }
}

/** The store checks the name itself (vfs/volume/snapshot-format.ts checkName): 1 to 64 bytes, a file name. */
function snapshotName(req: AdminRequest): string {
  return stringField(req, 'snapshot')
}

export function registerSnapshotCommands(commands: AdminCommands, volumes: VolumeRegistry, log: Logger): void {
  commands.register('snapshot-create', async (req) => {
    const { name, snapshots } = snapshotsOf(volumes, req)
    const snap = await snapshots.create(snapshotName(req))
    log.info({ volume: name, snapshot: snap.name, id: snap.id }, 'snapshot created')
    return { volume: name, snapshot: snap }
  })
  commands.register('snapshot-list', (req) => {
    const { name, snapshots } = snapshotsOf(volumes, req)
    return Promise.resolve({ volume: name, snapshots: snapshots.list() })
  })
  commands.register('snapshot-delete', async (req) => {
    const { name, snapshots } = snapshotsOf(volumes, req)
    const snap = snapshotName(req)
    await snapshots.delete(snap)
    log.info({ volume: name, snapshot: snap }, 'snapshot deleted')
    return { volume: name, snapshot: snap }
  })
  commands.register('snapshot-export', async (req) => {
    const { sv, v } = served(volumes, req)
    const snap = snapshotName(req)
    const file = stringField(req, 'file')
    // The server's working directory is not the caller's: a relative path would name another file.
    if (!isAbsolute(file)) throw new AdminError('ADMIN_BAD_ARGUMENT', `snapshot-export: "file" must be an absolute path, got ${file.slice(0, 256)}`)
    const source = snapshotSourceOf(v.config.name, v.origin, snap)
    try {
      const written = await writeImage(v, source, file)
      log.info({ volume: sv.name, snapshot: snap, file, written }, 'snapshot exported')
      return { volume: v.config.name, snapshot: snap, file, size: source.size, written }
    } finally {
      await source.close()
    }
  })
}
