import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { ImageFile } from '../engine/blockdev/image-file.ts'
import type { AssembledVolume } from './assemble.ts'
import { assembleVolume } from './assemble.ts'
import { LAYERS, openIntentBitmap, redundantLayers } from './factory.ts'
import type { VolumeEventSink } from './layer.ts'
import type { Disk } from './member-io.ts'
import type { OriginDevice } from './snapshot.ts'
import { openVolumeOrigin } from './snapshot-volume.ts'

export interface OpenVolumeOptions {
  /** Only this volume (name or id); a disk of another is VOLUME_FOREIGN. */
  volume?: string
  readOnly?: boolean
  onEvent?: VolumeEventSink
}

export interface OpenVolume extends AssembledVolume {
  /**
   * With a snapshot store configured: the origin layer over the top layer's first part, which is
   * then also `device` (what the engine opens); snapshots are created, listed and read through it.
   */
  readonly origin?: OriginDevice
  /** The top layer the configuration's root builds (a mirror, RAID-5...): `device` itself unless a store splits it. */
  readonly top: BlockDevice
  /** Closes the layers (which close their members), the intent logs, and every disk opened. */
  close(): Promise<void>
}

/**
 * Opens every path (an image file or a block device; read-write opens are locked against a
 * second opener) and assembles the volume its member superblocks describe, with the real layers
 * and write-intent bitmaps. Read-write, the regions a crash left dirty are resynced before the
 * volume is handed out. On any error, whatever was opened is closed again.
 */
export async function openVolume(paths: readonly string[], opts: OpenVolumeOptions = {}): Promise<OpenVolume> {
  const readOnly = opts.readOnly ?? false
  const disks: Disk[] = []
  const closeDisks = async (): Promise<void> => {
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
  let assembled: AssembledVolume | undefined
  try {
    for (const path of paths) disks.push({ path, dev: await ImageFile.open(path, { readOnly }) })
    assembled = await assembleVolume(disks, LAYERS, {
      openIntent: openIntentBitmap,
      ...(opts.volume === undefined ? {} : { volume: opts.volume }),
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    })
    const volume = assembled
    const top = volume.device
    let origin: OriginDevice | undefined
    const close = async (): Promise<void> => {
      // The origin waits for its background deletes, then closes its two partitions of the top.
      await origin?.close().catch(() => undefined)
      await top.close().catch(() => undefined)
      for (const intent of volume.intents) await intent.close().catch(() => undefined)
      // Disks the tree does not hold (a member marked failed) are still open.
      for (const d of volume.disks) await d.dev.close().catch(() => undefined)
      await closeDisks()
    }
    if (!readOnly) {
      try {
        // Innermost first: an outer layer's resync reads through the inner ones.
        for (const layer of redundantLayers(volume.device).reverse()) await layer.resync()
      } catch (err) {
        await close()
        throw err
      }
    }
    const store = volume.config.snapshotStore
    if (store === undefined) return Object.assign(volume, { close, top })
    try {
      // After the resync: the store is read through the layers it is as redundant as.
      origin = await openVolumeOrigin(top, store, opts.onEvent)
    } catch (err) {
      await close()
      throw err
    }
    return Object.assign(volume, { close, device: origin, origin, top })
  } catch (err) {
    if (assembled === undefined) await closeDisks()
    throw err
  }
}
