import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { MemberRecord, VolumeConfig } from './config.ts'
import { validateConfig } from './config.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from './member-format.ts'
import type { MemberDisk, VolumeMembers } from './member-io.ts'
import { writeMember } from './member-io.ts'
import { xorOf } from './parity.ts'
import type { ReshapeGeometry, Window } from './reshape-plan.ts'
import { BACKUP_HEADER, backupOffset, dataPerRow, parityOf, placeOf, windowAt } from './reshape-plan.ts'
import type { ReshapeRecord } from './reshape-state.ts'
import { decodeBackup, encodeBackup } from './reshape-state.ts'

/**
 * The copy loop of a reshape (reshape-plan.ts has the why of the windows): for each window of new
 * rows, in increasing order, the window's volume bytes are read from the old layout (or from the
 * backup area when the configuration says the window sits there), laid out over n + 1 members
 * (RAID-5's parity recomputed, left-symmetric over n + 1), written in place, flushed on every
 * member, and then the checkpoint advances: the configuration at seq + 1 on every member. A
 * window that overwrites its own sources goes through the backup area first: backup written and
 * flushed, then a configuration saying so, then the in-place write. So a crash at any write
 * leaves, under the newest configuration any member holds, every volume byte either in the new
 * layout below the checkpoint, in the backup named by it, or in an old row no window has written
 * yet; resuming from there reaches the same end.
 *
 * A reshape needs every member (it reads and writes them all directly, below the layers); it
 * runs offline: before the layers are built (assembleVolume resumes one it finds in progress).
 */

export interface ReshapeOptions {
  /** Bytes of new rows, over all members, per window at most (default 16 MiB). */
  windowBytes?: number
  /** After each checkpoint: volume bytes in the new layout, of the total. */
  onProgress?: (done: number, total: number) => void
}

const DEFAULT_WINDOW = 16 * 1024 * 1024

/** The reshape's geometry from a configuration recording one. */
export function reshapeGeometry(config: VolumeConfig): ReshapeGeometry & { readonly record: ReshapeRecord } {
  const root = config.root
  const record = config.reshape
  if (record === undefined || (root.kind !== 'stripe' && root.kind !== 'raid5')) throw new VolumeError('VOLUME_LAYOUT', `volume ${config.name} records no reshape`)
  const unit = root.unit ?? DEFAULT_UNIT
  const sizes = config.members.map((m) => m.size)
  return { kind: root.kind, oldN: record.from, unit, rows: Math.floor(Math.min(...sizes) / unit), record }
}

/** The member devices in the new layout's order (the old layout is the first `from`). */
function membersInOrder(volume: VolumeMembers): BlockDevice[] {
  const root = volume.config.root
  if (root.kind === 'disk' || root.kind === 'partition') throw new VolumeError('VOLUME_LAYOUT', 'a reshape needs a stripe or RAID-5 root')
  return root.children.map((c, i) => {
    const d = c.kind === 'disk' ? volume.disks.find((x) => x.uuid === c.member) : undefined
    if (d === undefined) throw new VolumeError('VOLUME_INCOMPLETE', `volume ${volume.config.name} is being reshaped, which needs every member to finish: member ${i} (${c.kind === 'disk' ? c.member : c.kind}) is not among the disks given (the new disk too)`)
    if (d.dev.readOnly) {
      const at = volume.config.reshape?.position ?? 0
      throw new VolumeError('VOLUME_LAYOUT', `volume ${volume.config.name} is being reshaped (${at} bytes in the new layout); ${d.path} is read-only: a read-write open of every disk finishes it (tsnfs resize --volume DISK..., or the server at start)`)
    }
    return d.dev
  })
}

/**
 * Writes `next` (at seq + 1) to every member, new ones included, and fails if any does not take
 * it: a checkpoint must be on every member before the next window's writes.
 */
export async function writeEverywhere(volume: VolumeMembers, change: (c: VolumeConfig) => VolumeConfig): Promise<void> {
  const next = validateConfig({ ...change(volume.config), seq: volume.config.seq + 1 })
  for (const d of volume.disks) {
    const memberIndex = next.members.findIndex((m) => m.uuid === d.uuid)
    const m = next.members[memberIndex]
    if (m === undefined) continue
    await writeMember(d.dev, { volumeId: next.id, memberUuid: m.uuid, memberIndex, dataOffset: MEMBER_RESERVED, dataSize: m.size, seq: next.seq, config: next })
  }
  volume.config = next
}

/** Volume bytes [unit × first, unit × end) of the old layout's units from `u0`, read row run by row run, one read per member. */
async function readOld(g: ReshapeGeometry, devs: readonly BlockDevice[], u0: number, units: number): Promise<Buffer> {
  const out = Buffer.alloc(units * g.unit)
  const dOld = dataPerRow(g.kind, g.oldN)
  const oldUnits = g.rows * dOld
  const last = Math.min(u0 + units, oldUnits)
  if (last <= u0) return out // beyond the old volume: zeros
  const first = Math.floor(u0 / dOld)
  const end = Math.floor((last - 1) / dOld) + 1
  const runs = await Promise.all(devs.slice(0, g.oldN).map((d) => d.read(MEMBER_RESERVED + first * g.unit, (end - first) * g.unit)))
  for (let u = u0; u < last; u++) {
    const at = placeOf(g.kind, g.oldN, u)
    const run = runs[at.member]
    if (run === undefined) throw new Error(`no member ${at.member}`)
    run.copy(out, (u - u0) * g.unit, (at.row - first) * g.unit, (at.row - first + 1) * g.unit)
  }
  return out
}

/** The window's rows on every member of the new layout, from the window's volume bytes. */
function layOut(g: ReshapeGeometry, w: Window, data: Buffer): Buffer[] {
  const n = g.oldN + 1
  const dNew = dataPerRow(g.kind, n)
  const rows = w.to - w.from
  const out = Array.from({ length: n }, () => Buffer.alloc(rows * g.unit))
  for (let r = w.from; r < w.to; r++) {
    const at = (r - w.from) * g.unit
    const units: Buffer[] = []
    for (let i = 0; i < dNew; i++) {
      const u = r * dNew + i
      const member = placeOf(g.kind, n, u).member
      const src = data.subarray((u - w.from * dNew) * g.unit, (u - w.from * dNew + 1) * g.unit)
      out[member]?.set(src, at)
      units.push(src)
    }
    const p = parityOf(g.kind, n, r)
    const target = out[p]
    if (target !== undefined) xorOf(target.subarray(at, at + g.unit), units)
  }
  return out
}

async function flushAll(devs: readonly BlockDevice[]): Promise<void> {
  for (const d of devs) await d.flush()
}

/**
 * Runs the reshape `volume.config` records from its checkpoint to the end and records it done
 * (the configuration without `reshape`). Resolves with the volume bytes copied by this call.
 */
export async function runReshape(volume: VolumeMembers, options: ReshapeOptions = {}): Promise<number> {
  const g = reshapeGeometry(volume.config)
  const devs = membersInOrder(volume)
  const n = g.oldN + 1
  const dNew = dataPerRow(g.kind, n)
  const rowBytes = dNew * g.unit
  const maxRows = Math.max(1, Math.floor((options.windowBytes ?? DEFAULT_WINDOW) / (n * g.unit)))
  const backupAt = MEMBER_RESERVED + backupOffset(g)
  const backupDev = devs[n - 1]
  if (backupDev === undefined) throw new Error('no new member')
  const total = g.rows * rowBytes
  let copied = 0
  for (let record = volume.config.reshape; record !== undefined; record = volume.config.reshape) {
    if (record.position % rowBytes !== 0 || record.position >= total) throw new VolumeError('VOLUME_LAYOUT', `reshape position ${record.position} is not a row boundary within ${total} bytes`)
    const from = record.position / rowBytes
    const w = windowAt(g, from, maxRows)
    const length = (w.to - w.from) * rowBytes
    let data: Buffer
    if (record.backup) {
      // The in-place write may have begun: the old rows are no longer trusted, only the backup.
      const got = decodeBackup(await backupDev.read(backupAt, BACKUP_HEADER + length), record.id, record.position, length)
      if (typeof got === 'string') throw new VolumeError('VOLUME_LAYOUT', `volume ${volume.config.name}: the reshape's backup of the window at ${record.position} is unusable: ${got}`)
      data = got
    } else {
      data = await readOld(g, devs, w.from * dNew, (w.to - w.from) * dNew)
      if (w.backup) {
        await backupDev.write(backupAt, encodeBackup(record.id, record.position, data))
        await backupDev.flush()
        await writeEverywhere(volume, (c) => ({ ...c, reshape: { ...record, backup: true } }))
      }
    }
    const rows = layOut(g, w, data)
    await Promise.all(devs.map((d, i) => d.write(MEMBER_RESERVED + w.from * g.unit, rows[i] ?? Buffer.alloc(0))))
    await flushAll(devs)
    const position = w.to * rowBytes
    if (w.to === g.rows) {
      // Done: the configuration no longer records a reshape (and the size is the new layout's).
      await writeEverywhere(volume, (c) => {
        const rest: Record<string, unknown> = { ...c }
        delete rest.reshape
        return rest as unknown as VolumeConfig
      })
    } else {
      await writeEverywhere(volume, (c) => ({ ...c, reshape: { ...record, position, backup: false } }))
    }
    copied += length
    options.onProgress?.(position, total)
  }
  return copied
}

/**
 * Starts a reshape of `volume` (a flat stripe or RAID-5, every member present and in sync, closed)
 * onto the fresh member `added`, then runs it to the end. Nothing is written before every check
 * passes; then the intent areas are zeroed (the volume's size changes, see grow.ts), and the
 * configuration recording the reshape at position 0 goes to the new member first, then to the
 * others, so any member holding it names only disks that carry a superblock.
 */
export async function beginReshape(volume: VolumeMembers, added: { readonly disk: MemberDisk; readonly record: MemberRecord }, id: string, regionSize: number, options: ReshapeOptions = {}): Promise<number> {
  const current = volume.config
  const root = current.root
  if (root.kind !== 'stripe' && root.kind !== 'raid5') throw new VolumeError('VOLUME_LAYOUT', `a ${root.kind} is never reshaped`)
  const unit = root.unit ?? DEFAULT_UNIT
  const rows = Math.floor(Math.min(...current.members.map((m) => m.size)) / unit)
  if (added.record.size < rows * unit) {
    throw new VolumeError('VOLUME_LAYOUT', `${added.disk.path}: its ${added.record.size}-byte data area is smaller than the ${rows * unit} bytes each member of volume ${current.name} uses`)
  }
  backupOffset({ kind: root.kind, oldN: root.children.length, unit, rows })
  const next: VolumeConfig = {
    ...current,
    root: { ...root, children: [...root.children, { kind: 'disk', member: added.record.uuid }] },
    members: [...current.members, added.record],
    flags: { ...current.flags, regionSize },
    reshape: { from: root.children.length, position: 0, backup: false, id },
  }
  const everyone = [added.disk, ...volume.disks]
  const clean = Buffer.alloc(INTENT_LENGTH)
  for (const d of everyone) {
    await d.dev.write(INTENT_OFFSET, clean)
    await d.dev.flush()
  }
  const starting: VolumeMembers = { config: current, disks: everyone }
  await writeEverywhere(starting, () => next)
  volume.disks.push(added.disk)
  volume.config = starting.config
  return runReshape(volume, options)
}
