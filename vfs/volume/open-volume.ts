import { ImageFile } from '../engine/blockdev/image-file.ts'
import type { AssembledVolume } from './assemble.ts'
import { assembleVolume } from './assemble.ts'
import { LAYERS, openIntentBitmap, redundantLayers } from './factory.ts'
import type { VolumeEventSink } from './layer.ts'
import type { Disk } from './member-io.ts'

export interface OpenVolumeOptions {
  /** Only this volume (name or id); a disk of another is VOLUME_FOREIGN. */
  volume?: string
  readOnly?: boolean
  onEvent?: VolumeEventSink
}

export interface OpenVolume extends AssembledVolume {
  /** Closes the layers (which close their members), the intent logs, and every disk opened. */
  close(): Promise<void>
}

/**
 * Opens every path (an image file or a block device; read-write opens are locked against a
 * second opener) and assembles the volume its member superblocks describe (openVolumeOn). On
 * any error, whatever was opened is closed again.
 */
export async function openVolume(paths: readonly string[], opts: OpenVolumeOptions = {}): Promise<OpenVolume> {
  const readOnly = opts.readOnly ?? false
  const disks: Disk[] = []
  try {
    for (const path of paths) disks.push({ path, dev: await ImageFile.open(path, { readOnly }) })
    return await openVolumeOn(disks, opts)
  } catch (err) {
    for (const d of disks) await d.dev.close().catch(() => undefined)
    throw err
  }
}

/**
 * Assembles the volume the member superblocks of `disks` (opened by the caller) describe, with
 * the real layers and write-intent bitmaps. Read-write, the regions a crash left dirty are
 * resynced before the volume is handed out. The returned close closes the disks too; on an
 * error the caller closes them.
 */
export async function openVolumeOn(disks: readonly Disk[], opts: OpenVolumeOptions = {}): Promise<OpenVolume> {
  const volume = await assembleVolume(disks, LAYERS, {
    openIntent: openIntentBitmap,
    ...(opts.volume === undefined ? {} : { volume: opts.volume }),
    ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
  })
  const close = async (): Promise<void> => {
    await volume.device.close().catch(() => undefined)
    for (const intent of volume.intents) await intent.close().catch(() => undefined)
    // Disks the tree does not hold (a member marked failed) are still open.
    for (const d of volume.disks) await d.dev.close().catch(() => undefined)
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
  if (!(opts.readOnly ?? false)) {
    try {
      // Innermost first: an outer layer's resync reads through the inner ones.
      for (const layer of redundantLayers(volume.device).reverse()) await layer.resync()
    } catch (err) {
      await close()
      throw err
    }
  }
  return Object.assign(volume, { close })
}
