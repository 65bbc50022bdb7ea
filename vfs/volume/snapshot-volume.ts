import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { SnapshotStoreConfig } from './config.ts'
import { MIN_STORE } from './config.ts'
import type { VolumeEventSink } from './layer.ts'
import { VolumeError } from './layer.ts'
import { PartitionDevice } from './partition.ts'
import { OriginDevice } from './snapshot.ts'
import { DEFAULT_CHUNK } from './snapshot-format.ts'
import { SnapshotStore } from './snapshot-store.ts'

/**
 * A volume's snapshots in place (issue 14 item 6): the top layer's last bytes hold the exception
 * store, the rest is the origin the file system lives on. Both are partitions of the top layer,
 * so the store is exactly as redundant as the data, and the disks alone describe it (the size is
 * in the configuration every member carries).
 */

/** What the user asked for: bytes, or a percentage of the top layer. */
export type StoreRequest = { readonly bytes: number } | { readonly percent: number }

/** Percentages taken: below 1 holds nothing useful, above 90 leaves the file system nothing. */
const MAX_PERCENT = 90

/** The store's configuration for a top layer of `topSize` bytes: whole chunks, leaving an origin of whole chunks. */
export function storeConfigFor(topSize: number, request: StoreRequest, chunkSize = DEFAULT_CHUNK): SnapshotStoreConfig {
  let wanted: number
  if ('percent' in request) {
    if (!Number.isInteger(request.percent) || request.percent < 1 || request.percent > MAX_PERCENT) {
      throw new VolumeError('VOLUME_LAYOUT', `snapshot store ${request.percent}%: a whole percentage from 1 to ${MAX_PERCENT}`)
    }
    wanted = Math.floor((topSize * request.percent) / 100)
  } else wanted = request.bytes
  const size = Math.floor(wanted / chunkSize) * chunkSize
  if (size < MIN_STORE) throw new VolumeError('VOLUME_LAYOUT', `snapshot store of ${wanted} bytes: at least ${MIN_STORE} bytes`)
  if (topSize - size < MIN_STORE) throw new VolumeError('VOLUME_LAYOUT', `snapshot store of ${size} bytes leaves ${Math.max(0, topSize - size)} of the volume's ${topSize} bytes for the file system`)
  return { size, chunkSize }
}

/** The origin [0, size − store) and the store [size − store, size) of the top layer. */
function split(top: BlockDevice, store: SnapshotStoreConfig): { origin: PartitionDevice; store: PartitionDevice } {
  if (top.size - store.size < MIN_STORE) {
    throw new VolumeError('VOLUME_LAYOUT', `a snapshot store of ${store.size} bytes does not fit a ${top.size}-byte volume`)
  }
  return { origin: new PartitionDevice(top, 0, top.size - store.size), store: new PartitionDevice(top, top.size - store.size, store.size) }
}

/** Writes an empty store at the end of `top` (at create). */
export async function formatVolumeStore(top: BlockDevice, config: SnapshotStoreConfig): Promise<void> {
  const parts = split(top, config)
  await SnapshotStore.format(parts.store, { chunkSize: config.chunkSize })
}

/** The origin device over `top` (at assemble): what the engine opens when the volume keeps snapshots. */
export async function openVolumeOrigin(top: BlockDevice, config: SnapshotStoreConfig, onEvent?: VolumeEventSink): Promise<OriginDevice> {
  const parts = split(top, config)
  const store = await SnapshotStore.open(parts.store)
  if (store.chunkSize !== config.chunkSize) {
    throw new VolumeError('VOLUME_LAYOUT', `the snapshot store's chunk is ${store.chunkSize} bytes, the configuration says ${config.chunkSize}`)
  }
  return new OriginDevice(parts.origin, store, onEvent === undefined ? {} : { onEvent })
}
