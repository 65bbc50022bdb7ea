/*
 * The engine's crash checker (test/vfs/engine/crash-check.ts) on top of each layer (issue 14 item
 * 5): the seeded workload runs on the engine over a volume whose every disk is a member of one
 * JointRecorder, so a power cut hits every disk at once, at one tick of a shared clock: per disk,
 * the writes a completed flush of that disk covered are in, every other write issued before the
 * cut may or may not be (one possibly torn at a sector). Each crash state is then what a restart
 * does: the volume assembled from the crashed disks (openVolumeOn: superblocks, intent bitmaps,
 * resync of the dirty regions), the engine's journal replayed through the volume, and the linear
 * image judged as the engine's checker judges one (checkImage, e2fsck -fn every Nth distinct image,
 * the tree equal to the model after some op between the last acknowledged and the last issued).
 * For a mirror and RAID-5 the state is assembled again and one member lost after the resync: the
 * degraded volume must read byte for byte what the whole one did (no write hole). For the snapshot
 * origin the disks are the origin and the exception store, and a snapshot taken before the
 * workload must read the file system as it was, whatever the crash.
 *
 * Crash points: the tick after every flush completion (each boundary, every one of them), the end,
 * and seeded random ticks between; per point none, all, seeded subsets and a torn write. The joint
 * states are far too many to run: with more than `maxStates`, a seeded sample of them runs.
 */
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { ParentKind } from '../../../vfs/volume/config.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { redundantLayers } from '../../../vfs/volume/factory.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { openVolumeOn } from '../../../vfs/volume/open-volume.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { judgeImage, scratchDir } from '../engine/crash-check.ts'
import type { CrashFailure, CrashReport, JudgeCtx } from '../engine/crash-check.ts'
import { runWorkload } from '../engine/crash-record.ts'
import type { RecordOptions, WorkloadLog } from '../engine/crash-record.ts'
import { JointRecorder, sectorsOf } from './joint-recorder.ts'
import type { JointWrite } from './joint-recorder.ts'
import { prng } from '../../helpers/prng.ts'
import fs from 'node:fs'

export type CrashLayer = 'span' | 'stripe' | 'mirror' | 'raid5' | 'snapshot'
export const CRASH_LAYERS: readonly CrashLayer[] = ['span', 'stripe', 'mirror', 'raid5', 'snapshot']

export interface VolumeCrashOptions extends RecordOptions {
  layer: CrashLayer
  /** Crash states checked at most: above it, a seeded sample of the enumeration. */
  maxStates: number
  /** Random subsets of the pending writes per crash point. */
  subsets: number
  /** Crash points drawn at random between the flush boundaries. */
  randomPoints: number
  /** Mirror and RAID-5: lose every member in turn after each state's resync, or one drawn at random. */
  lose: 'every' | 'one'
  /** e2fsck -fn on every Nth distinct image (0: never), and on every failing one. */
  e2fsckEvery: number
  /** Stop at this Date.now(). */
  deadline?: number
  /** Check only the state with this index in the enumeration (a failure's replay). */
  only?: number
}

export interface VolumeCrashReport extends CrashReport {
  layer: CrashLayer
  disks: number
  /** Crash points (ticks) and joint states in the whole enumeration, before sampling. */
  points: number
  enumerated: number
  /** States assembled again with one member lost (mirror, RAID-5), each compared byte for byte. */
  degraded: number
  /** Snapshot reads compared with the image the snapshot was taken of. */
  snapshotReads: number
}

/** A crash state: the cut's tick, the pending writes that made it, and maybe one torn. */
export interface JointState {
  at: number
  apply: JointWrite[]
  torn?: { write: JointWrite; sectors: number }
}

const KiB = 1024
const UNIT = 16 * KiB
const REGION = 64 * KiB
const CHUNK = 4 * KiB

/** A disk that outlives the layers set up on it (layers close their members). */
class KeepOpen extends PassThroughDevice {
  override close(): Promise<void> {
    return Promise.resolve()
  }
}

/** How many disks, and each one's data area, for a volume of about `bytes`. */
function geometry(layer: CrashLayer, bytes: number): { level?: ParentKind; disks: number; data: number } {
  switch (layer) {
    case 'span':
      return { level: 'span', disks: 2, data: bytes / 2 }
    case 'stripe':
      return { level: 'stripe', disks: 2, data: bytes / 2 }
    case 'mirror':
      return { level: 'mirror', disks: 2, data: bytes }
    case 'raid5':
      return { level: 'raid5', disks: 3, data: bytes / 2 }
    case 'snapshot':
      return { disks: 2, data: bytes }
  }
}

/** What a restart builds on crashed disks: the device the engine opens, and how to close it all. */
interface Opened {
  device: BlockDevice
  close(): Promise<void>
}

async function openCrashed(layer: CrashLayer, disks: MemoryDevice[]): Promise<Opened> {
  if (layer === 'snapshot') {
    const [origin, store] = disks
    if (origin === undefined || store === undefined) throw new Error('the origin and the store')
    const vol = new OriginDevice(origin, await SnapshotStore.open(store), { now: () => 0 })
    return { device: vol, close: () => vol.close() }
  }
  const v = await openVolumeOn(disks.map((dev, i) => ({ path: `disk${i}`, dev })))
  return { device: v.device, close: () => v.close() }
}

const ZERO_BLOCK = Buffer.alloc(4 * KiB)

/** The volume's bytes as a sparse MemoryDevice (what the engine's judge takes): only its non-zero 4 KiB blocks are copied. */
async function imageOf(dev: BlockDevice): Promise<MemoryDevice> {
  const out = new MemoryDevice(dev.size)
  const step = 1024 * KiB
  for (let off = 0; off < dev.size; off += step) {
    const buf = await dev.read(off, Math.min(step, dev.size - off))
    for (let b = 0; b < buf.length; b += ZERO_BLOCK.length) {
      const block = buf.subarray(b, b + ZERO_BLOCK.length)
      if (!block.equals(ZERO_BLOCK.subarray(0, block.length))) out.writeSync(off + b, block)
    }
  }
  return out
}

interface Setup {
  bases: MemoryDevice[]
  rec: JointRecorder
  log: WorkloadLog
  /** Snapshot layer: the origin's image when the snapshot was taken. */
  snapshotImage?: Buffer
}

/** mkfs on a fresh volume of the layer, then the workload on the engine over recorded disks. */
async function setUp(o: VolumeCrashOptions): Promise<Setup> {
  const bytes = o.imageBytes ?? 16 * 1024 * KiB
  const g = geometry(o.layer, bytes)
  const r = prng(o.seed ^ 0x0b1d)
  const random = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)))
  let bases: MemoryDevice[]
  let snapshotImage: Buffer | undefined
  if (o.layer === 'snapshot') {
    const origin = new MemoryDevice(g.data)
    await makeFileSystem(origin, { zeroed: true, blockSize: o.blockSize })
    const store = new MemoryDevice(g.data + 1024 * KiB)
    await SnapshotStore.format(store, { chunkSize: CHUNK })
    const vol = new OriginDevice(new KeepOpen(origin), await SnapshotStore.open(new KeepOpen(store)), { now: () => 0 })
    await vol.createSnapshot('before')
    await vol.close()
    snapshotImage = origin.toBuffer()
    bases = [origin, store]
  } else {
    bases = Array.from({ length: g.disks }, () => new MemoryDevice(MEMBER_RESERVED + g.data))
    const disks = bases.map((b, i) => ({ path: `disk${i}`, dev: new KeepOpen(b) }))
    await createVolume(`crash-${o.layer}`, g.level ?? 'span', disks, { unit: UNIT, regionSize: REGION, random })
    const v = await openVolumeOn(disks)
    await makeFileSystem(v.device, { zeroed: true, blockSize: o.blockSize })
    // Twice: the first settles the intent bits, the second makes the clearing durable.
    await v.device.flush()
    await v.device.flush()
    await v.close()
  }
  const rec = new JointRecorder()
  const live = bases.map((b, i) => rec.wrap(i, b.clone()))
  let top: BlockDevice
  let closeTop: () => Promise<void>
  if (o.layer === 'snapshot') {
    const vol = new OriginDevice(live[0]!, await SnapshotStore.open(live[1]!), { now: () => 0 })
    top = vol
    closeTop = () => vol.close()
  } else {
    const v = await openVolumeOn(live.map((dev, i) => ({ path: `disk${i}`, dev })))
    top = v.device
    closeTop = () => v.close()
  }
  let log: WorkloadLog
  try {
    log = await runWorkload(o, top, () => rec.now)
  } finally {
    await closeTop().catch(() => undefined)
  }
  return { bases, rec, log, ...(snapshotImage === undefined ? {} : { snapshotImage }) }
}

/**
 * A write of the file system's primary superblock (1024 bytes at 1024 of the volume, at 1024 of
 * a member's data area where `dataOffset` starts it, on every layout here: the stripe unit is
 * larger): ext4 writes it in place, a torn one fails its checksum and no one mounts it, so the
 * engine's checker does not tear it (crash-states.ts) and neither does this one.
 */
function isPrimarySuperblock(w: JointWrite, dataOffset: number): boolean {
  return w.offset <= dataOffset + 1024 && w.offset + w.data.length >= dataOffset + 2048 && w.data.length <= 4096
}

/** Every joint state of the enumeration, in tick order; `dataOffset`: where the disks' data areas start. */
export function enumerate(rec: JointRecorder, o: Pick<VolumeCrashOptions, 'seed' | 'subsets' | 'randomPoints'>, dataOffset: number): { points: number; states: JointState[] } {
  const r = prng(o.seed ^ 0x5eed)
  const ticks = new Set<number>(rec.flushes.map((f) => f.completed + 1))
  ticks.add(0)
  ticks.add(rec.now + 1)
  for (let i = 0; i < o.randomPoints; i++) ticks.add(Math.floor(r() * (rec.now + 1)))
  const states: JointState[] = []
  for (const at of [...ticks].sort((a, b) => a - b)) {
    const { pending } = rec.split(at)
    states.push({ at, apply: [] })
    if (pending.length === 0) continue
    states.push({ at, apply: pending })
    for (let s = 0; s < o.subsets && pending.length > 1; s++) states.push({ at, apply: pending.filter(() => r() < 0.5) })
    const tearable = pending.filter((w) => sectorsOf(w, 512) > 1 && !isPrimarySuperblock(w, dataOffset))
    const w = tearable[Math.floor(r() * tearable.length)]
    if (w !== undefined) states.push({ at, apply: pending.filter((p) => p !== w && r() < 0.5), torn: { write: w, sectors: 1 + Math.floor(r() * (sectorsOf(w, 512) - 1)) } })
  }
  return { points: ticks.size, states }
}

/** The disks a state leaves. */
function crashedDisks(s: Setup, state: JointState): MemoryDevice[] {
  const { durable } = s.rec.split(state.at)
  return s.rec.build(s.bases, [...durable, ...state.apply, ...(state.torn === undefined ? [] : [state.torn.write])], state.torn)
}

/** '' or why one state fails. */
async function checkState(s: Setup, o: VolumeCrashOptions, ctx: JudgeCtx, report: VolumeCrashReport, state: JointState, r: () => number): Promise<string> {
  const acked = s.log.ackedAt.filter((a) => a <= state.at).length
  // An op issued at the cut's tick did nothing on disk yet; counting it allows one more model, harmlessly (and covers an op that did no I/O at all).
  const issued = s.log.issuedAt.filter((a) => a <= state.at).length
  const problems: string[] = []
  let raw: MemoryDevice
  let image: MemoryDevice
  const v = await openCrashed(o.layer, crashedDisks(s, state))
  try {
    raw = await imageOf(v.device)
    await recover(v.device)
    await v.device.flush()
    image = await imageOf(v.device)
    if (o.layer === 'snapshot' && v.device instanceof OriginDevice && s.snapshotImage !== undefined) {
      const snap = v.device.snapshot('before')
      const got = await snap.read(0, snap.size)
      report.snapshotReads++
      if (!got.equals(s.snapshotImage)) problems.push('snapshot "before" no longer reads the image it was taken of')
    }
  } catch (err) {
    return `assembly, resync or replay threw ${(err as Error).message}`
  } finally {
    await v.close().catch(() => undefined)
  }
  if (o.layer === 'mirror' || o.layer === 'raid5') {
    const n = s.bases.length
    const lose = o.lose === 'every' ? Array.from({ length: n }, (_, i) => i) : [Math.floor(r() * n)]
    for (const lost of lose) {
      const d = await openCrashed(o.layer, crashedDisks(s, state))
      try {
        const [layer] = redundantLayers(d.device)
        if (layer === undefined) throw new Error('no redundant layer')
        layer.fail(lost)
        const got = await imageOf(d.device)
        report.degraded++
        if (got.contentKey() !== raw.contentKey()) problems.push(`member ${lost} lost after the resync: the volume reads differently (write hole)`)
      } catch (err) {
        problems.push(`member ${lost} lost: ${(err as Error).message}`)
      } finally {
        await d.close().catch(() => undefined)
      }
    }
  }
  const why = await judgeImage(ctx, image, acked, issued)
  if (why !== '') problems.push(why)
  return problems.join('; ')
}

/** The whole check for one layer; failures are collected, never thrown. */
export async function runVolumeCrashCheck(o: VolumeCrashOptions): Promise<VolumeCrashReport> {
  const s = await setUp(o)
  const { points, states } = enumerate(s.rec, o, o.layer === 'snapshot' ? 0 : MEMBER_RESERVED)
  const r = prng(o.seed ^ 0x5a3e)
  // A seeded sample, kept in tick order so a report reads in the order of the workload.
  let chosen = states.map((state, index) => ({ state, index }))
  if (o.only !== undefined) chosen = chosen.filter((c) => c.index === o.only)
  if (chosen.length > o.maxStates) {
    for (let i = chosen.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1))
      ;[chosen[i], chosen[j]] = [chosen[j]!, chosen[i]!]
    }
    chosen = chosen.slice(0, o.maxStates).sort((a, b) => a.index - b.index)
  }
  const report: VolumeCrashReport = {
    layer: o.layer,
    disks: s.bases.length,
    seed: o.seed,
    blockSize: o.blockSize,
    ops: s.log.ops.length,
    bigDirBytes: s.log.bigDirBytes,
    flushes: s.rec.flushes.length,
    writes: s.rec.writes.length,
    kinds: s.log.kinds,
    freedHeld: s.log.freed.length,
    states: 0,
    distinct: 0,
    e2fsckRuns: 0,
    failed: 0,
    failures: [] as CrashFailure[],
    points,
    enumerated: states.length,
    degraded: 0,
    snapshotReads: 0,
  }
  const ctx: JudgeCtx = { rc: s.log, cache: new Map(), report, tmp: scratchDir(), e2fsckEvery: o.e2fsckEvery }
  try {
    for (const { state, index } of chosen) {
      if (o.deadline !== undefined && Date.now() > o.deadline) break
      const why = await checkState(s, o, ctx, report, state, r)
      report.states++
      if (why === '') continue
      report.failed++
      if (report.failures.length < 50) report.failures.push({ state: { flushes: state.at, apply: [] }, index, why: `tick ${state.at}, ${state.apply.length} pending applied${state.torn === undefined ? '' : ', one torn'}: ${why}` })
    }
  } finally {
    fs.rmSync(ctx.tmp, { recursive: true, force: true })
  }
  return report
}
