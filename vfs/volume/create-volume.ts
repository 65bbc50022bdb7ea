import { randomBytes } from 'node:crypto'
import type { LayoutNode, MemberRecord, ParentKind, VolumeConfig } from './config.ts'
import { CONFIG_VERSION, MAX_INTENT_REGIONS, MAX_MEMBERS, validateConfig, validateName } from './config.ts'
import { VolumeError } from './layer.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from './member-format.ts'
import type { Disk, MemberDisk, VolumeMembers } from './member-io.ts'
import { readMember, writeMember } from './member-io.ts'
import type { LayerFactory, PresentMember } from './layer-tree.ts'
import { buildLayerTree } from './layer-tree.ts'
import type { StoreRequest } from './snapshot-volume.ts'
import { formatVolumeStore, storeConfigFor } from './snapshot-volume.ts'

export interface CreateOptions {
  /** Stripe unit for stripe and raid5 (absent: DEFAULT_UNIT, left out of the configuration). */
  unit?: number
  /** Keep a write-intent bitmap (default: for mirror and raid5). */
  intentBitmap?: boolean
  /** Bytes one intent bit covers (default: the smallest power of two ≥ 64 MiB that fits the area). */
  regionSize?: number
  /** Overwrite disks that already carry a member superblock. */
  force?: boolean
  /** Keep snapshots: the top layer's last bytes (or percent) become the exception store, formatted here. */
  snapshotStore?: StoreRequest
  /** The layers to build the store through (the real ones: factory.ts's LAYERS). Needed with snapshotStore. */
  layers?: LayerFactory
  /** Where the volume id and member uuids come from (tests pass a seeded source). */
  random?: (bytes: number) => Buffer
}

/**
 * 64 MiB at least (mdadm's internal-bitmap chunk; intent-bitmap.ts's DEFAULT_REGION): every region
 * a write enters costs a bitmap write and a flush of every member before the data may go. With
 * 1 MiB regions a sequential write paid that per MiB and ran at a fraction of one disk's speed;
 * the price of a large region is only a longer resync of the regions dirty at a crash.
 */
function defaultRegionSize(dataBytes: number): number {
  let region = 64 * 1024 * 1024
  while (region * MAX_INTENT_REGIONS < dataBytes) region *= 2
  return region
}

/** A member's data area: the disk after the reserved area, in whole 4 KiB blocks. */
function dataSizeOf(disk: Disk): number {
  const size = Math.floor((disk.dev.size - MEMBER_RESERVED) / 4096) * 4096
  if (size <= 0) throw new VolumeError('VOLUME_LAYOUT', `${disk.path}: ${disk.dev.size} bytes leaves no data area after the ${MEMBER_RESERVED}-byte reserved area`)
  return size
}

/** Writes the superblock of every listed, not failed member among `disks`; returns who took it. */
async function writeAll(config: VolumeConfig, disks: readonly MemberDisk[]): Promise<{ written: string[]; unreachable: { path: string; uuid: string; error: unknown }[] }> {
  const written: string[] = []
  const unreachable: { path: string; uuid: string; error: unknown }[] = []
  await Promise.all(
    disks.map(async (disk) => {
      const memberIndex = config.members.findIndex((m) => m.uuid === disk.uuid)
      const m = config.members[memberIndex]
      if (m === undefined || m.state === 'failed') return
      try {
        await writeMember(disk.dev, { volumeId: config.id, memberUuid: m.uuid, memberIndex, dataOffset: MEMBER_RESERVED, dataSize: m.size, seq: config.seq, config })
        written.push(disk.path)
      } catch (error) {
        unreachable.push({ path: disk.path, uuid: disk.uuid, error })
      }
    }),
  )
  return { written, unreachable }
}

/**
 * Makes `disks` the members of a new volume, in the order given: writes each a member superblock
 * at sequence 1 and clears its intent-bitmap area. A disk that already belongs to a volume is
 * refused (VOLUME_FOREIGN) unless `force`. A single-disk volume is a span of one.
 */
export async function createVolume(name: string, level: ParentKind, disks: readonly Disk[], options: CreateOptions = {}): Promise<VolumeMembers> {
  validateName(name)
  if (disks.length === 0 || disks.length > MAX_MEMBERS) throw new VolumeError('VOLUME_LAYOUT', `${disks.length} disks, not 1 to ${MAX_MEMBERS}`)
  if (options.force !== true) {
    for (const disk of disks) {
      // Only a disk that is certainly no member is taken without force; a damaged superblock
      // (VOLUME_LAYOUT) may still be a volume's, and is refused like a whole one.
      const read = await readMember(disk.dev).catch((err: unknown) => {
        if (err instanceof VolumeError && err.code === 'VOLUME_NO_SUPERBLOCK') return null
        throw new VolumeError('VOLUME_FOREIGN', `${disk.path} carries a damaged member superblock; give force to overwrite it`, { cause: err })
      })
      if (read !== null) {
        const c = read.superblock.config
        throw new VolumeError('VOLUME_FOREIGN', `${disk.path} is member ${read.superblock.memberIndex} of volume ${c.name} (id ${c.id}); give force to overwrite it`)
      }
    }
  }
  const random = options.random ?? randomBytes
  const members: MemberRecord[] = disks.map((d) => ({ uuid: random(16).toString('hex'), size: dataSizeOf(d), state: 'ok' }))
  const children: LayoutNode[] = members.map((m) => ({ kind: 'disk', member: m.uuid }))
  const root: LayoutNode = options.unit === undefined || level === 'span' || level === 'mirror' ? { kind: level, children } : { kind: level, unit: options.unit, children }
  const total = members.reduce((sum, m) => sum + m.size, 0)
  let config = validateConfig({
    version: CONFIG_VERSION,
    name,
    id: random(16).toString('hex'),
    seq: 1,
    root,
    members,
    snapshots: [],
    flags: { intentBitmap: options.intentBitmap ?? (level === 'mirror' || level === 'raid5'), regionSize: options.regionSize ?? defaultRegionSize(total) },
  })
  const memberDisks: MemberDisk[] = disks.map((d, i) => ({ path: d.path, dev: d.dev, uuid: members[i]?.uuid ?? '' }))
  // A reused disk's old bitmap would make the first open resync regions for nothing, or worse,
  // parse as another layout's; every member starts clean.
  const zeros = Buffer.alloc(INTENT_LENGTH)
  for (const d of disks) await d.dev.write(INTENT_OFFSET, zeros)
  if (options.snapshotStore !== undefined) config = await formatStore(config, memberDisks, options.snapshotStore, options.layers)
  const { unreachable } = await writeAll(config, memberDisks)
  const first = unreachable[0]
  if (first !== undefined) throw new VolumeError('VOLUME_MEMBER', `${first.path}: writing its member superblock failed`, { cause: first.error })
  return { config, disks: memberDisks }
}

/**
 * Sizes the store on the top layer the configuration builds and formats it, before any member
 * superblock is written: a create cut short leaves disks that are no volume, never a volume
 * whose configuration names a store that was never formatted. The tree is only flushed, not
 * closed: closing it would close the caller's disks.
 */
async function formatStore(config: VolumeConfig, disks: readonly MemberDisk[], request: StoreRequest, layers: LayerFactory | undefined): Promise<VolumeConfig> {
  if (layers === undefined) throw new VolumeError('VOLUME_LAYOUT', 'a snapshot store needs the layers to format it through')
  const present = new Map<string, PresentMember>(disks.map((d) => [d.uuid, { path: d.path, dev: d.dev, dataOffset: MEMBER_RESERVED }]))
  const tree = await buildLayerTree(config, present, layers)
  const snapshotStore = storeConfigFor(tree.device.size, request)
  await formatVolumeStore(tree.device, snapshotStore)
  await tree.device.flush()
  return validateConfig({ ...config, snapshotStore })
}

export interface UpdateResult {
  readonly config: VolumeConfig
  /** Paths of the disks that took the new configuration. */
  readonly written: readonly string[]
  /** Members the write failed on: the caller marks them failed (with a further update). */
  readonly unreachable: readonly { readonly path: string; readonly uuid: string; readonly error: unknown }[]
}

/**
 * Changes the configuration (a member failed, was replaced, finished rebuilding): `mutate` gets
 * the current one and returns the next, which is checked, given the next sequence number and
 * written (both copies, flushed) to every listed member not marked failed. A failed member keeps
 * its older copy, so assembling with it later is refused as stale. No member taking it:
 * VOLUME_FAILED, and the volume keeps its old configuration.
 */
export function updateConfig(volume: VolumeMembers, mutate: (current: VolumeConfig) => VolumeConfig): Promise<UpdateResult> {
  // One at a time per volume: two members failing at once must give seq N+1 and N+2, each
  // change applied to the other's result, never two different configurations both at N+1.
  const previous = queues.get(volume) ?? Promise.resolve()
  const next = previous.then(() => applyUpdate(volume, mutate))
  queues.set(
    volume,
    next.then(
      () => undefined,
      () => undefined,
    ),
  )
  return next
}

const queues = new WeakMap<VolumeMembers, Promise<void>>()

async function applyUpdate(volume: VolumeMembers, mutate: (current: VolumeConfig) => VolumeConfig): Promise<UpdateResult> {
  const current = volume.config
  const next = validateConfig({ ...mutate(current), seq: current.seq + 1 })
  if (next.id !== current.id) throw new VolumeError('VOLUME_LAYOUT', `the volume id cannot change (${current.id} to ${next.id})`)
  const { written, unreachable } = await writeAll(next, volume.disks)
  if (written.length === 0) throw new VolumeError('VOLUME_FAILED', `no member took configuration seq ${next.seq} of volume ${next.name}`, { cause: unreachable[0]?.error })
  volume.config = next
  return { config: next, written, unreachable }
}
