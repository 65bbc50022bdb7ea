import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { VolumeConfig } from './config.ts'
import type { IntentLog } from './layer.ts'
import { VolumeError } from './layer.ts'
import type { BuildOptions, LayerFactory, PresentMember } from './layer-tree.ts'
import { buildLayerTree } from './layer-tree.ts'
import type { MemberSuperblock } from './member-format.ts'
import type { Disk, MemberDisk, VolumeMembers } from './member-io.ts'
import { readMember } from './member-io.ts'
import { runReshape } from './reshape.ts'

export interface AssembleOptions extends BuildOptions {
  /** Assemble only this volume (its name or id); a disk of any other is VOLUME_FOREIGN. */
  volume?: string
}

export interface AssembledVolume extends VolumeMembers {
  /** The root layer: what the storage engine opens. */
  readonly device: BlockDevice
  /** Members the volume starts without, and why (the caller may start a rebuild onto them). */
  readonly missing: readonly { readonly uuid: string; readonly index: number; readonly reason: string }[]
  readonly intents: readonly IntentLog[]
  /** Disks whose other superblock copy was torn, damaged or older, with what was wrong. */
  readonly repairs: readonly { readonly path: string; readonly problems: readonly string[] }[]
  /**
   * The layer the configuration's root builds, when a snapshot store splits it and `device` is the
   * origin over its first part (openVolume sets it); absent, `device` is that layer.
   */
  readonly top?: BlockDevice
}

/** The root layer (the mirror, RAID-5... that members are failed, rebuilt and scrubbed in), not the snapshot origin over it. */
export function topLayer(v: AssembledVolume): BlockDevice {
  return v.top ?? v.device
}

interface Found extends Disk {
  readonly sb: MemberSuperblock
  readonly problems: readonly string[]
}

/** The same error with the disk's path in front, so the user knows which disk to pull. */
function onDisk(path: string, err: unknown): unknown {
  if (!(err instanceof VolumeError)) return err
  return new VolumeError(err.code, `${path}: ${err.message.slice(err.code.length + 2)}`, { cause: err })
}

function newest(found: readonly Found[]): Found {
  let best = found[0]
  if (best === undefined) throw new VolumeError('VOLUME_INCOMPLETE', 'no disks given')
  for (const f of found) if (f.sb.seq > best.sb.seq) best = f
  return best
}

function describeVolume(config: VolumeConfig): string {
  return `volume ${config.name} (id ${config.id})`
}

/** Refuses disks of more than one volume, or of another volume than the one asked for. */
function refuseForeign(found: readonly Found[], wanted: string | undefined): void {
  const groups = new Map<string, Found[]>()
  for (const f of found) groups.set(f.sb.volumeId, [...(groups.get(f.sb.volumeId) ?? []), f])
  if (wanted !== undefined) {
    for (const f of found) {
      const c = f.sb.config
      if (c.id !== wanted && c.name !== wanted) throw new VolumeError('VOLUME_FOREIGN', `${f.path}: disk of ${describeVolume(c)}, not of volume ${wanted}`)
    }
  }
  if (groups.size < 2) return
  const parts = [...groups.values()].map((g) => `${describeVolume(newest(g).sb.config)}: ${g.map((f) => f.path).join(', ')}`)
  throw new VolumeError('VOLUME_FOREIGN', `disks of ${groups.size} volumes given together (${parts.join('; ')})`)
}

function refuseDuplicates(found: readonly Found[]): void {
  const byUuid = new Map<string, Found>()
  for (const f of found) {
    const other = byUuid.get(f.sb.memberUuid)
    if (other !== undefined) {
      throw new VolumeError('VOLUME_MEMBER', `${other.path} and ${f.path} both carry member ${f.sb.memberUuid} of ${describeVolume(f.sb.config)} (one disk given twice, or a copy of it)`)
    }
    byUuid.set(f.sb.memberUuid, f)
  }
}

/**
 * A member whose configuration is older than the newest one AND which that configuration marks
 * failed or no longer lists missed updates: its data is not the volume's. (One that is older but
 * still listed as ok only missed a configuration write, e.g. a crash mid-update, and is used.)
 */
function refuseStale(found: readonly Found[], config: VolumeConfig): void {
  for (const f of found) {
    if (f.sb.seq >= config.seq) continue
    const m = config.members.find((r) => r.uuid === f.sb.memberUuid)
    if (m !== undefined && m.state !== 'failed') continue
    const why = m === undefined ? 'the volume no longer lists it' : `the volume marks it failed${m.reason === undefined ? '' : ` (${m.reason})`}`
    throw new VolumeError('VOLUME_STALE', `${f.path}: stale member: configuration seq ${f.sb.seq}, volume is at ${config.seq}; ${why}`)
  }
}

/**
 * Rebuilds a volume from its disks alone, whatever their order or names now (issue 14 item 2):
 * reads every disk's member superblock, takes the configuration with the highest sequence
 * number, maps member uuids to the disks and builds the layers with `factory`. Refused, with the
 * disk's path: a disk without superblock (VOLUME_NO_SUPERBLOCK), disks of two volumes
 * (VOLUME_FOREIGN), one disk given twice (VOLUME_MEMBER), a stale member (VOLUME_STALE), too
 * few members to serve (VOLUME_INCOMPLETE). Nothing is written (the next updateConfig brings
 * older superblocks up to date), except that a reshape the configuration records in progress is
 * finished first (reshape.ts; refused unless every member is here, read-write).
 */
export async function assembleVolume(disks: readonly Disk[], factory: LayerFactory, options: AssembleOptions = {}): Promise<AssembledVolume> {
  const found: Found[] = []
  for (const disk of disks) {
    try {
      const read = await readMember(disk.dev)
      found.push({ ...disk, sb: read.superblock, problems: read.problems })
    } catch (err) {
      throw onDisk(disk.path, err)
    }
  }
  refuseForeign(found, options.volume)
  refuseDuplicates(found)
  const top = newest(found)
  let config = top.sb.config
  const json = JSON.stringify(config)
  for (const f of found) {
    if (f.sb.seq === config.seq && JSON.stringify(f.sb.config) !== json) {
      throw new VolumeError('VOLUME_LAYOUT', `${top.path} and ${f.path} hold different configurations at seq ${config.seq} (assembled apart and changed on both sides)`)
    }
  }
  refuseStale(found, config)
  const members: MemberDisk[] = found.map((f) => ({ path: f.path, dev: f.dev, uuid: f.sb.memberUuid }))
  if (config.reshape !== undefined) {
    // A reshape a crash or a stop cut short: finished here, before any layer is built over a
    // layout that is half old, half new (it needs every member, read-write).
    const reshaping = { config, disks: members }
    await runReshape(reshaping)
    config = reshaping.config
  }

  const present = new Map<string, PresentMember>()
  for (const f of found) present.set(f.sb.memberUuid, { path: f.path, dev: f.dev, dataOffset: f.sb.dataOffset })
  const build: BuildOptions = {}
  if (options.onEvent !== undefined) build.onEvent = options.onEvent
  if (options.openIntent !== undefined) build.openIntent = options.openIntent
  const tree = await buildLayerTree(config, present, factory, build)
  const repairs = found.filter((f) => f.problems.length > 0).map((f) => ({ path: f.path, problems: f.problems }))
  return { config, disks: members, device: tree.device, missing: tree.missing, intents: tree.intents, repairs }
}
