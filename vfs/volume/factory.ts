import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { IntentBitmap } from './intent-bitmap.ts'
import type { IntentLog } from './layer.ts'
import type { IntentCopy, IntentOpener, LayerFactory } from './layer-tree.ts'
import { MirrorDevice } from './mirror.ts'
import { PartitionDevice } from './partition.ts'
import { Raid5Device } from './raid5.ts'
import { SpanDevice } from './span.ts'
import { StripeDevice } from './stripe.ts'

/** The real layers, for the CLI and the server (tests pass recorders to buildLayerTree instead). */
export const LAYERS: LayerFactory = {
  partition: (inner, offset, size) => new PartitionDevice(inner, offset, size),
  span: (members) => new SpanDevice(members),
  stripe: (members, options) => new StripeDevice(members, options),
  mirror: (legs, options) => new MirrorDevice(legs, options),
  raid5: (members, options) => new Raid5Device(members, options),
}

/** A log that is clean and stays clean: for a read-only open of a bitmap never written. */
class CleanLog implements IntentLog {
  readonly regionSize: number
  constructor(regionSize: number) {
    this.regionSize = regionSize
  }
  mark(): Promise<void> {
    return Promise.resolve()
  }
  settle(): Promise<void> {
    return Promise.resolve()
  }
  dirtyAtOpen(): readonly { offset: number; length: number }[] {
    return []
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}

async function allZero(copy: IntentCopy): Promise<boolean> {
  // The copy's length is the member format's fixed intent area, not a length read from disk.
  const bytes = await copy.dev.read(copy.offset, copy.length)
  return bytes.every((b) => b === 0)
}

/**
 * IntentBitmap.open over the members' intent areas. createVolume and replaceMember leave those
 * areas zeroed, not formatted: a bitmap whose every copy is all zeros was never written, so it is
 * formatted clean here (or, read-only, stands for a clean log). Anything else that does not open
 * (a damaged bitmap) stays VOLUME_BITMAP.
 */
export const openIntentBitmap: IntentOpener = async (copies, volumeSize, regionSize) => {
  try {
    return await IntentBitmap.open(copies, volumeSize, { regionSize })
  } catch (err) {
    const zeroed = await Promise.all(copies.map(allZero))
    if (!zeroed.every(Boolean)) throw err
    if (copies.some((c) => c.dev.readOnly)) return new CleanLog(regionSize)
    await IntentBitmap.format(copies, volumeSize, { regionSize })
    return await IntentBitmap.open(copies, volumeSize, { regionSize })
  }
}

/** The mirror and RAID-5 layers of a built tree, outermost first (what resync and scrub walk). */
export function redundantLayers(dev: BlockDevice): (MirrorDevice | Raid5Device)[] {
  const own = dev instanceof MirrorDevice || dev instanceof Raid5Device ? [dev] : []
  const members = 'members' in dev && Array.isArray(dev.members) ? (dev.members as BlockDevice[]) : []
  // Once each: the snapshot origin's two partitions reach the same top layer.
  return [...new Set([...own, ...members.flatMap(redundantLayers)])]
}
