import { randomBytes } from 'node:crypto'
import type { LayoutNode, MemberRecord, ParentNode, VolumeConfig } from './config.ts'
import { MAX_INTENT_REGIONS, validateConfig } from './config.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from './member-format.ts'
import type { Disk, MemberDisk, VolumeMembers } from './member-io.ts'
import { readMember, writeMember } from './member-io.ts'
import { ImageFile } from '../engine/blockdev/image-file.ts'
import { assembleVolume } from './assemble.ts'
import { LAYERS } from './factory.ts'
import type { ReshapeOptions } from './reshape.ts'
import { beginReshape } from './reshape.ts'

/**
 * `tsnfs volume grow` (issue 14 item 3), offline, on a volume every member of which is present,
 * in sync and clean (the caller opened it read-write once, which resyncs, and closed it):
 *
 *   - a span takes new disks as members after its last one (NT's "extend volume", md linear's
 *     --grow --add): the volume grows by their data areas;
 *   - with `size`, every member's used size grows to `max` (the smallest member's capacity, md's
 *     --grow --size=max) or to a given size: members replaced by larger disks, image files made
 *     larger. A span grows only its last member (any other would move the data after it).
 *
 * Striped layouts keep every block where it was: the unit at index u stays on member u mod n at
 * the same member offset, and RAID-5's parity member depends on the stripe index alone, so
 * growing appends stripes. The new region is made consistent before the configuration names it:
 * a mirror's legs and a RAID-5's members are zeroed there (zero data, zero parity agree).
 * Adding a member to a stripe or RAID-5 moves every block: a reshape (reshape.ts), one member at
 * a time, offline, checkpointed so a crash anywhere resumes at the next assembly.
 *
 * Crash safety: zeroed regions and intent areas first, flushed; then the configuration at seq+1
 * on each member, one after another, new members first. A crash leaves every member at the old
 * sequence (the old volume) or some at the new one, whose configuration then wins at assembly
 * (members a step behind that it still lists are used: they only missed the write). The intent
 * areas are zeroed because the bitmap's slots record the volume's size; a zeroed area is
 * formatted clean at the next read-write open, in whichever size the winning configuration has.
 */

export interface GrowOptions {
  /** New disks to append (span), or the one member a stripe or RAID-5 is reshaped over. */
  add?: readonly Disk[]
  /** Each member's used size: `max` or bytes (a multiple of 4096). */
  size?: 'max' | number
  /** Take added disks that carry another volume's member superblock. */
  force?: boolean
  /** Where new member uuids come from (tests pass a seeded source). */
  random?: (bytes: number) => Buffer
  /** A reshape's window size and progress (a member added to a stripe or RAID-5). */
  reshape?: ReshapeOptions
}

export interface GrowVolumeResult {
  readonly config: VolumeConfig
  /** False when nothing changed (every member already at the size asked for, nothing added). */
  readonly grown: boolean
  /** Bytes of zeros written to make the new region of a mirror or RAID-5 consistent. */
  readonly zeroed: number
}

const ZERO_CHUNK = 1024 * 1024
const BLOCK = 4096

function layout(what: string): never {
  throw new VolumeError('VOLUME_LAYOUT', what)
}

/** A disk's capacity for data: after the reserved area, whole 4 KiB blocks (as createVolume measures). */
export function capacityOf(disk: Disk): number {
  return Math.max(0, Math.floor((disk.dev.size - MEMBER_RESERVED) / BLOCK) * BLOCK)
}

/** The one level grow handles: a span, stripe, mirror or RAID-5 whose children are the member disks. */
function flatRoot(config: VolumeConfig): { root: ParentNode; order: string[] } {
  const root = config.root
  const nested = (): never => layout(`grow handles a volume of one level over its disks (span, stripe, mirror or raid5); volume ${config.name} is a ${root.kind} with nested layers`)
  if (root.kind === 'disk' || root.kind === 'partition') return nested()
  const order = root.children.map((c: LayoutNode) => (c.kind === 'disk' ? c.member : nested()))
  return { root, order }
}

/** Bytes of each member the layer uses for data, given the members' sizes. */
function usedPerMember(kind: string, unit: number, sizes: readonly number[]): number {
  const min = Math.min(...sizes)
  return kind === 'raid5' ? Math.floor(min / unit) * unit : min
}

async function zeroRange(disk: MemberDisk, from: number, to: number): Promise<number> {
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK, Math.max(0, to - from)))
  for (let at = from; at < to; at += ZERO_CHUNK) await disk.dev.write(MEMBER_RESERVED + at, zeros.subarray(0, Math.min(ZERO_CHUNK, to - at)))
  return Math.max(0, to - from)
}

/** The smallest power of two at least `regionSize` that keeps the regions within a member's bitmap area. */
function regionSizeFor(total: number, regionSize: number): number {
  let r = regionSize
  while (Math.ceil(total / r) > MAX_INTENT_REGIONS) r *= 2
  return r
}

async function checkFresh(disk: Disk, force: boolean): Promise<void> {
  if (force) return
  const read = await readMember(disk.dev).catch((err: unknown) => {
    if (err instanceof VolumeError && err.code === 'VOLUME_NO_SUPERBLOCK') return null
    throw new VolumeError('VOLUME_FOREIGN', `${disk.path} carries a damaged member superblock; give force to take it`, { cause: err })
  })
  if (read !== null) {
    const c = read.superblock.config
    throw new VolumeError('VOLUME_FOREIGN', `${disk.path} is member ${read.superblock.memberIndex} of volume ${c.name} (id ${c.id}); give force to take it`)
  }
}

/**
 * The refusals growVolume makes from the configuration alone (a layout it does not grow, a
 * snapshot store, disks to add to what is not a span, a member out of sync or absent): a server
 * checks them before it closes anything, with `online`, which also refuses a reshape (it runs
 * offline only: the server would hold the export's calls for the whole copy).
 */
export function checkGrowable(volume: VolumeMembers, adding: number, size: GrowOptions['size'], online = false): void {
  const current = volume.config
  const kind = flatRoot(current).root.kind
  if (adding === 0 && size === undefined) layout('nothing to grow: give new disks (span) or a size (max or bytes per member)')
  // The store sits at the top layer's end: a larger top would put its place somewhere else.
  if (current.snapshotStore !== undefined) layout(`volume ${current.name} keeps a snapshot store at its end, which growing would move; grow does not relocate it`)
  if (adding > 0 && kind !== 'span') {
    if (kind === 'mirror') layout('adding a disk to a mirror adds a leg, not space; a mirror grows with --size max once every leg is larger')
    if (online) layout(`adding a member to a ${kind} moves every block to a new place (a reshape), which the server does not do while serving; stop the export and run tsnfs volume grow DISK... --add NEWDISK`)
    if (adding > 1) layout(`a reshape adds one member at a time; ${adding} disks were given`)
    if (size !== undefined) layout('a reshape (a member added to a stripe or raid5) and --size are separate grows: run them one after the other')
  }
  for (const [index, m] of current.members.entries()) {
    if (m.state !== 'ok') layout(`grow needs every member in sync: member ${index} (${m.uuid}) is ${m.state}`)
    if (!volume.disks.some((d) => d.uuid === m.uuid)) throw new VolumeError('VOLUME_INCOMPLETE', `grow needs every member present: member ${index} (${m.uuid}) is not among the disks given`)
  }
}

/** Grows `volume` as `options` say; see the header. Nothing to do: `grown` false, nothing written. */
export async function growVolume(volume: VolumeMembers, options: GrowOptions): Promise<GrowVolumeResult> {
  const current = volume.config
  const { root, order } = flatRoot(current)
  const kind = root.kind
  const add = options.add ?? []
  checkGrowable(volume, add.length, options.size)
  const diskOf = (uuid: string): MemberDisk => {
    const d = volume.disks.find((x) => x.uuid === uuid)
    if (d === undefined) throw new VolumeError('VOLUME_INCOMPLETE', `member ${uuid} is not among the disks given`)
    return d
  }

  // The members' new sizes.
  const sizes = new Map(current.members.map((m) => [m.uuid, m.size]))
  if (options.size !== undefined) {
    const want = options.size
    if (want !== 'max' && (!Number.isSafeInteger(want) || want <= 0 || want % BLOCK !== 0)) layout(`size ${want} is not a positive multiple of ${BLOCK}`)
    // A span's earlier members stay: growing one would move everything after it.
    const growing = kind === 'span' ? order.slice(-1) : order
    const caps = growing.map((uuid) => capacityOf(diskOf(uuid)))
    const target = want === 'max' ? Math.min(...caps) : want
    for (const [i, uuid] of growing.entries()) {
      const cap = caps[i] ?? 0
      const d = diskOf(uuid)
      if (target > cap) layout(`${d.path}: ${target} bytes per member do not fit its ${cap}-byte data area (a ${d.dev.size}-byte disk)`)
      const old = sizes.get(uuid) ?? 0
      if (target < old) {
        if (want === 'max') continue // a larger member under a smaller one keeps its size (the layer uses the smallest)
        layout(`${d.path}: member size ${old} cannot shrink to ${target}; grow only grows`)
      }
      sizes.set(uuid, target)
    }
  }

  // Members to append (span).
  const random = options.random ?? randomBytes
  const added: { disk: MemberDisk; record: MemberRecord }[] = []
  for (const disk of add) {
    if (volume.disks.some((d) => d.dev === disk.dev || d.path === disk.path)) layout(`${disk.path} is already a member of volume ${current.name}`)
    await checkFresh(disk, options.force === true)
    const size = capacityOf(disk)
    if (size <= 0) layout(`${disk.path}: ${disk.dev.size} bytes leaves no data area after the ${MEMBER_RESERVED}-byte reserved area`)
    const uuid = random(16).toString('hex')
    added.push({ disk: { path: disk.path, dev: disk.dev, uuid }, record: { uuid, size, state: 'ok' } })
  }

  const reshaping = added[0]
  if (reshaping !== undefined && (kind === 'stripe' || kind === 'raid5')) {
    const total = [...current.members, reshaping.record].reduce((sum, m) => sum + m.size, 0)
    const regionSize = current.flags.intentBitmap ? regionSizeFor(total, current.flags.regionSize) : current.flags.regionSize
    await beginReshape(volume, reshaping, random(16).toString('hex'), regionSize, options.reshape)
    return { config: volume.config, grown: true, zeroed: 0 }
  }

  const changed = added.length > 0 || current.members.some((m) => sizes.get(m.uuid) !== m.size)
  if (!changed) return { config: current, grown: false, zeroed: 0 }

  const members: MemberRecord[] = [
    ...current.members.map((m) => (m.reason === undefined ? { uuid: m.uuid, size: sizes.get(m.uuid) ?? m.size, state: m.state } : { ...m, size: sizes.get(m.uuid) ?? m.size })),
    ...added.map((a) => a.record),
  ]
  const total = members.reduce((sum, m) => sum + m.size, 0)
  const next = validateConfig({
    ...current,
    seq: current.seq + 1,
    root: { ...root, children: [...root.children, ...added.map((a) => ({ kind: 'disk' as const, member: a.record.uuid }))] },
    members,
    flags: { ...current.flags, regionSize: current.flags.intentBitmap ? regionSizeFor(total, current.flags.regionSize) : current.flags.regionSize },
  })

  // The new region of a redundant layer, consistent on every member before anything names it.
  let zeroed = 0
  if (kind === 'mirror' || kind === 'raid5') {
    const unit = root.unit ?? DEFAULT_UNIT
    const from = usedPerMember(kind, unit, order.map((u) => current.members.find((m) => m.uuid === u)?.size ?? 0))
    const to = usedPerMember(kind, unit, order.map((u) => sizes.get(u) ?? 0))
    for (const uuid of order) zeroed += await zeroRange(diskOf(uuid), from, to)
  }
  const everyone = [...added.map((a) => a.disk), ...order.map(diskOf)]
  const clean = Buffer.alloc(INTENT_LENGTH)
  for (const d of everyone) {
    await d.dev.write(INTENT_OFFSET, clean)
    await d.dev.flush()
  }
  // New members first: once any old member holds seq+1, every member it names must carry a superblock.
  for (const d of everyone) {
    const memberIndex = next.members.findIndex((m) => m.uuid === d.uuid)
    const m = next.members[memberIndex]
    if (m === undefined) continue
    await writeMember(d.dev, { volumeId: next.id, memberUuid: m.uuid, memberIndex, dataOffset: MEMBER_RESERVED, dataSize: m.size, seq: next.seq, config: next })
  }
  for (const a of added) volume.disks.push(a.disk)
  volume.config = next
  return { config: next, grown: true, zeroed }
}

/**
 * growVolume on the volume `paths` hold, opened bare (no layers running, nothing else may have
 * them open: the caller closed the volume, which resynced and flushed it), with the disks at
 * `addPaths` appended (span). Closes every disk again; resolves with the result and the paths the
 * volume has now.
 */
export async function growDisks(paths: readonly string[], addPaths: readonly string[], options: Omit<GrowOptions, 'add'>): Promise<GrowVolumeResult & { readonly paths: readonly string[] }> {
  const disks: Disk[] = []
  try {
    for (const path of paths) disks.push({ path, dev: await ImageFile.open(path) })
    const added: Disk[] = []
    for (const path of addPaths) added.push({ path, dev: await ImageFile.open(path) })
    disks.push(...added)
    const volume = await assembleVolume(disks.slice(0, paths.length), LAYERS)
    const r = await growVolume(volume, { ...options, add: added })
    return { ...r, paths: r.grown ? [...paths, ...addPaths] : [...paths] }
  } finally {
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
}
