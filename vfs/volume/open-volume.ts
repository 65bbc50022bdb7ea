import { ImageFile } from '../engine/blockdev/image-file.ts'
import type { AssembledVolume } from './assemble.ts'
import { assembleVolume } from './assemble.ts'
import { LAYERS, openIntentBitmap, redundantLayers } from './factory.ts'
import type { RebuildOptions, VolumeEventSink } from './layer.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { MEMBER_RESERVED } from './member-format.ts'
import { MissingDevice } from './missing-device.ts'
import { rebuildMember, setRebuildCheckpoint } from './member-state.ts'
import { MirrorDevice } from './mirror.ts'
import { Raid5Device } from './raid5.ts'
import type { Disk } from './member-io.ts'
import type { LayoutNode } from './config.ts'
import type { OriginDevice } from './snapshot.ts'
import { openVolumeOrigin } from './snapshot-volume.ts'

export interface OpenVolumeOptions {
  /** Only this volume (name or id); a disk of another is VOLUME_FOREIGN. */
  volume?: string
  readOnly?: boolean
  onEvent?: VolumeEventSink
  /**
   * Read-write opens continue a rebuild a crash or a stop cut short (a member of the top mirror
   * or RAID-5 in state rebuilding, whose disk is among those given) from its checkpoint, before
   * the volume is handed out; these are its options, false leaves the member out of service.
   */
  rebuild?: RebuildOptions | false
  /**
   * Hand the volume out as soon as the resync is done, with a resumed rebuild still running (its
   * member serves reads below its watermark and takes every write, as during a replace); the
   * rebuilds are in `resuming`. The server serves at once this way (degraded) instead of waiting
   * for the whole member, as md starts an array and recovers in the background.
   */
  background?: boolean
}

/** A rebuild an open resumed from its checkpoint. */
export interface ResumedRebuild {
  readonly uuid: string
  /** The member's index in the configuration. */
  readonly index: number
  readonly path: string
  /** Bytes of the member already whole when the open resumed it. */
  readonly from: number
  /** Resolves with the bytes rebuilt once the member is whole and recorded ok; rejects as rebuildMember does. */
  readonly done: Promise<number>
}

export interface OpenVolume extends AssembledVolume {
  /**
   * With a snapshot store configured: the origin layer over the top layer's first part, which is
   * then also `device` (what the engine opens); snapshots are created, listed and read through it.
   */
  readonly origin?: OriginDevice
  /** The top layer the configuration's root builds (a mirror, RAID-5...): `device` itself unless a store splits it. */
  readonly top: BlockDevice
  /** Rebuilds resumed at open (see OpenVolumeOptions.background); settled ones stay listed. */
  readonly resuming: readonly ResumedRebuild[]
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
  const top = volume.device
  let origin: OriginDevice | undefined
  let resumed: ResumedRebuild[] = []
  const close = async (): Promise<void> => {
    // The origin waits for its background deletes, then closes its two partitions of the top.
    await origin?.close().catch(() => undefined)
    await top.close().catch(() => undefined)
    // A rebuild in the background stops at the close (its checkpoint stays for the next open); a
    // configuration write it had begun ends before the disks close under it.
    for (const r of resumed) await r.done.catch(() => undefined)
    for (const intent of volume.intents) await intent.close().catch(() => undefined)
    // Disks the tree does not hold (a member marked failed) are still open.
    for (const d of volume.disks) await d.dev.close().catch(() => undefined)
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
  let opened: AssembledVolume = volume
  if (!(opts.readOnly ?? false)) {
    try {
      // A RAID-5 resync must know which members it cannot read (a stand-in would fail it mid-stripe).
      for (const layer of redundantLayers(top)) {
        if (!(layer instanceof Raid5Device)) continue
        for (const [i, m] of layer.members.entries()) if (m instanceof MissingDevice && layer.status().members[i]?.state === 'ok') layer.fail(i)
      }
      await dropCheckpoints(volume, opts.rebuild !== false)
      resumed = opts.rebuild === false ? [] : startResumes(volume, opts.rebuild ?? {})
      // A failed resume is awaited below (or by whoever holds `resuming`); until then its rejection is not unhandled.
      for (const r of resumed) r.done.catch(() => undefined)
      // Innermost first: an outer layer's resync reads through the inner ones.
      for (const layer of redundantLayers(top).reverse()) await layer.resync()
      if (opts.background !== true) for (const r of resumed) await r.done
      // Back in its layer (rebuilding, or whole): no longer a member the volume runs without.
      if (resumed.length > 0) opened = Object.assign(volume, { missing: volume.missing.filter((m) => !resumed.some((r) => r.uuid === m.uuid)) })
    } catch (err) {
      await close()
      throw err
    }
  }
  const store = volume.config.snapshotStore
  if (store === undefined) return Object.assign(opened, { close, top, resuming: resumed })
  try {
    // After the resync and any resumed rebuild: the store is read through the layers it is as redundant as.
    origin = await openVolumeOrigin(top, store, opts.onEvent)
  } catch (err) {
    await close()
    throw err
  }
  return Object.assign(opened, { close, device: origin, origin, top, resuming: resumed })
}

/** The disk a child is, through partitions (a RAID-5 of partitions); undefined for a subtree of several. */
function soleDisk(node: LayoutNode): string | undefined {
  if (node.kind === 'disk') return node.member
  return node.kind === 'partition' ? soleDisk(node.child) : undefined
}

/** The member's data area (`inner`) under the partitions `node` puts between it and the layer. */
function underPartitions(node: LayoutNode, inner: BlockDevice): BlockDevice {
  return node.kind === 'partition' ? LAYERS.partition(underPartitions(node.child, inner), node.offset, node.size) : inner
}

/**
 * The top mirror or RAID-5's place of member `uuid`, if its child there is that disk (through
 * partitions: the checkpoint counts bytes of the child, which is what the rebuild recorded) and
 * the disk is here; with the device to rebuild onto, built over the disk.
 */
function resumable(volume: AssembledVolume, uuid: string): { layer: MirrorDevice | Raid5Device; place: number; child: (dataArea: BlockDevice) => BlockDevice; dev: BlockDevice } | undefined {
  const root = volume.config.root
  const layer = volume.device
  if ((root.kind !== 'mirror' && root.kind !== 'raid5') || !(layer instanceof MirrorDevice || layer instanceof Raid5Device)) return undefined
  const place = root.children.findIndex((n) => soleDisk(n) === uuid)
  const node = root.children[place]
  const disk = volume.disks.find((d) => d.uuid === uuid)
  return node === undefined || disk === undefined ? undefined : { layer, place, child: (area) => underPartitions(node, area), dev: disk.dev }
}

/**
 * A rebuild checkpoint says the new member is whole below it; that holds only while every write
 * to the volume reaches that member too. The checkpoint of a rebuild this open will not continue
 * is dropped to 0, durably, before anything is written (the volume is about to be written
 * without that member).
 */
async function dropCheckpoints(volume: AssembledVolume, resume: boolean): Promise<void> {
  for (const m of volume.config.members) {
    if (m.state !== 'rebuilding' || m.rebuilt === undefined || m.rebuilt === 0) continue
    if (!resume || resumable(volume, m.uuid) === undefined) await setRebuildCheckpoint(volume, m.uuid, 0)
  }
}

/**
 * Starts, from its checkpoint, every rebuild of a member of the top mirror or RAID-5 that the
 * configuration shows cut short, and returns each one's promise with the member's uuid. Each
 * member is back in its layer, as rebuilding up to the checkpoint, when this returns, so a
 * resync started next brings the regions a crash left dirty up to date on it too (md resyncs
 * through a recovering member the same way). A rebuilding member deeper in the tree (a disk of a
 * stripe leg: its rebuild kept no checkpoint), or whose disk is absent, stays out of service.
 */
function startResumes(volume: AssembledVolume, opts: RebuildOptions): ResumedRebuild[] {
  const out: ResumedRebuild[] = []
  for (const [index, m] of volume.config.members.entries()) {
    const at = m.state === 'rebuilding' ? resumable(volume, m.uuid) : undefined
    if (at === undefined) continue
    const { layer, place, dev, child } = at
    // The member was assembled as missing: RAID-5 rebuilds only a member it no longer uses.
    if (layer instanceof Raid5Device && layer.status().members[place]?.state !== 'failed') layer.fail(place)
    const path = volume.disks.find((d) => d.uuid === m.uuid)?.path ?? ''
    out.push({ uuid: m.uuid, index, path, from: m.rebuilt ?? 0, done: rebuildMember(volume, m.uuid, layer, place, child(LAYERS.partition(dev, MEMBER_RESERVED, m.size)), opts) })
  }
  return out
}
