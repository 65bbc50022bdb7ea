/*
 * A power cut at any moment of a reshape (vfs/volume/reshape.ts), by enumeration: the reshape of a
 * RAID-5 of 3 over a 4th disk, and of a stripe of 2 over a 3rd, runs on disks of one JointRecorder
 * (one clock for all), and after every tick the disks are rebuilt as a crash leaves them: the
 * writes a flush made durable, plus none, all, or seeded subsets of the others, or one of them
 * torn at a sector. Each state is assembled as a restart does (the new disk too; a new disk that
 * holds no superblock yet is no member, and the old disks alone are then the old volume), which
 * finishes the reshape; then every volume byte must be what it was (and zeros past the old size),
 * RAID-5's parity consistent (scrub), and the configuration records no reshape. A seeded sample of
 * the states is crashed again in the middle of that resume, at every point of it, and judged the same.
 * Crash points are the ticks after which something new can be lost (a write issued, a flush done);
 * states giving the same bytes are judged once.
 * TSNFS_SEED repeats a run (the subsets, the tears, the sample).
 */
import t from 'tap'
import type { Test } from 'tap'
import { randomInt } from 'node:crypto'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import type { AssembledVolume } from '../../../vfs/volume/assemble.ts'
import type { ParentKind } from '../../../vfs/volume/config.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { LAYERS, openIntentBitmap } from '../../../vfs/volume/factory.ts'
import { growVolume } from '../../../vfs/volume/grow.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { JointRecorder, sectorsOf } from './joint-recorder.ts'
import type { JointWrite } from './joint-recorder.ts'
import { memoryDisks, seededRandom } from './assemble-helpers.ts'
import { below, randomBytes, rng } from './volume-helpers.ts'

const UNIT = 4096
const ROWS = 16
const SIZE = MEMBER_RESERVED + ROWS * UNIT
const seed = Number(process.env.TSNFS_SEED ?? randomInt(1, 0x7fff_ffff))
t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)

function open(disks: readonly Disk[]): Promise<AssembledVolume> {
  return assembleVolume(disks, LAYERS, { openIntent: openIntentBitmap })
}

async function close(v: AssembledVolume): Promise<void> {
  for (const i of v.intents) await i.close()
}

/** The crash states after tick `at`: durable only, everything, a seeded subset, one write torn. */
function statesAt(rec: JointRecorder, at: number, r: () => number): { writes: JointWrite[]; torn?: { write: JointWrite; sectors: number } }[] {
  const { durable, pending } = rec.split(at)
  const out: { writes: JointWrite[]; torn?: { write: JointWrite; sectors: number } }[] = [{ writes: durable }]
  if (pending.length === 0) return out
  out.push({ writes: [...durable, ...pending] })
  out.push({ writes: [...durable, ...pending.filter(() => r() < 0.5)] })
  const tearable = pending.filter((w) => sectorsOf(w, 512) > 1)
  const write = tearable[below(r, tearable.length)]
  if (write !== undefined) {
    const others = pending.filter((w) => w !== write && r() < 0.5)
    out.push({ writes: [...durable, ...others, write], torn: { write, sectors: 1 + below(r, sectorsOf(write, 512) - 1) } })
  }
  return out
}

/** Ticks after which a crash leaves something new: just after a write was issued or a flush completed. */
function crashPoints(rec: JointRecorder): number[] {
  const at = new Set<number>([0, rec.now + 1])
  for (const w of rec.writes) at.add(w.issued + 1)
  for (const f of rec.flushes) at.add(f.completed + 1)
  return [...at].sort((a, b) => a - b)
}

/** A key naming a crash state's bytes: the writes applied (by their issue tick) and the tear. */
function keyOf(writes: readonly JointWrite[], torn?: { write: JointWrite; sectors: number }): string {
  return `${writes.map((w) => w.issued).sort((a, b) => a - b).join(',')}/${torn === undefined ? '' : `${torn.write.issued}:${torn.sectors}`}`
}

interface Judged {
  size: number
  /** The restart found the new disk no member yet and assembled the old ones. */
  old: boolean
}

/** A restart on crashed disks (the reshape finished by the assembly), judged; the failure's text, or what it assembled as. */
async function judge(devs: readonly MemoryDevice[], model: Buffer, level: ParentKind, n: number): Promise<Judged | string> {
  const disks = devs.map((dev, i) => ({ path: `d${i}`, dev }))
  let v: AssembledVolume
  let old = false
  try {
    v = await open(disks)
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'VOLUME_NO_SUPERBLOCK' && err.message.startsWith(`VOLUME_NO_SUPERBLOCK: d${n}:`))) return `assembly failed: ${String(err)}`
    v = await open(disks.slice(0, n))
    old = true
  }
  try {
    if (v.config.reshape !== undefined) return 'a reshape still recorded after the assembly'
    const bytes = await v.device.read(0, v.device.size)
    if (!bytes.subarray(0, model.length).equals(model)) return `the old bytes changed (volume of ${v.device.size})`
    if (!bytes.subarray(model.length).every((b) => b === 0)) return 'non-zero bytes past the old size'
    if (level === 'raid5') {
      if (!(v.device instanceof Raid5Device)) return 'not a RAID-5'
      const mismatches = (await v.device.scrub()).mismatches
      if (mismatches !== 0) return `${mismatches} parity mismatches`
    }
    return { size: v.device.size, old }
  } finally {
    await close(v)
  }
}

async function crashRun(t: Test, level: ParentKind, n: number): Promise<void> {
  const r = rng(seed ^ (n * 7919))
  const small = memoryDisks(`${level}c`, n, SIZE)
  await createVolume(`${level}crash`, level, small, { unit: UNIT, random: seededRandom(`${level}crash`) })
  const v1 = await open(small)
  const model = randomBytes(r, v1.device.size)
  await v1.device.write(0, model)
  await v1.device.flush()
  await close(v1)
  const bases = [...small.map((d) => d.dev.clone()), ...memoryDisks('new', 1, SIZE).map((d) => d.dev)]
  const rec = new JointRecorder()
  const disks = bases.map((b, i) => ({ path: `d${i}`, dev: rec.wrap(i, b.clone()) }))
  const v = await assembleVolume(disks.slice(0, n), LAYERS)
  await growVolume(v, { add: disks.slice(n), random: seededRandom(`${level}crash-new`) })
  const newSize = ROWS * (level === 'raid5' ? n : n + 1) * UNIT
  const failures: string[] = []
  const sizes = new Set<string>()
  let states = 0
  let again = 0
  const seen = new Set<string>()
  const points = crashPoints(rec)
  // A few states (seeded) are crashed again during the resume their assembly runs, at every point of it.
  const resumeAt = new Set([20 + below(r, 130), 20 + below(r, 130)])
  for (const at of points) {
    for (const state of statesAt(rec, at, r)) {
      const key = keyOf(state.writes, state.torn)
      if (seen.has(key)) continue
      seen.add(key)
      const crashed = rec.build(bases, state.writes, state.torn)
      if (resumeAt.has(states)) {
        const rec2 = new JointRecorder()
        const resumed = crashed.map((d, i) => ({ path: `d${i}`, dev: rec2.wrap(i, d.clone()) }))
        const first = await open(resumed).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
        if (first instanceof Error) {
          // The new disk no member yet: the old volume, nothing to resume.
          if (!first.message.startsWith('VOLUME_NO_SUPERBLOCK')) failures.push(`tick ${at}: resume failed: ${first.message}`)
        } else {
          await close(first)
          const seen2 = new Set<string>()
          for (const at2 of crashPoints(rec2)) {
            const { durable } = rec2.split(at2)
            const key2 = keyOf(durable)
            if (!seen2.has(key2)) {
              seen2.add(key2)
              const writes = durable
              again++
              const got = await judge(rec2.build(crashed, writes), model, level, n)
              if (typeof got === 'string') failures.push(`tick ${at}, resume crashed at tick ${at2}: ${got}`)
            }
          }
        }
      }
      states++
      const got = await judge(crashed, model, level, n)
      if (typeof got === 'string') failures.push(`tick ${at}${state.torn === undefined ? '' : ' (a write torn)'}: ${got}`)
      else sizes.add(`${got.old ? 'old disks' : 'all disks'}: ${got.size}`)
    }
  }
  t.strictSame(failures.slice(0, 10), [], `${states} distinct crash states at ${points.length} points, and ${again} crashes of a resume`)
  t.strictSame([...sizes].sort(), [`all disks: ${newSize}`, `old disks: ${model.length}`], 'the old volume (before the new disk was a member), else the reshaped one')
  t.ok(states > 150, `${states} states`)
  t.ok(again > 20, `${again} crashes of a resume`)
}

t.test('RAID-5 of 3 reshaped over 4: every crash state restarts into the same bytes', (t) => crashRun(t, 'raid5', 3))
t.test('stripe of 2 reshaped over 3: every crash state restarts into the same bytes', (t) => crashRun(t, 'stripe', 2))
