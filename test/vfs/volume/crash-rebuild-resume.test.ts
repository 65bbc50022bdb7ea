/*
 * A rebuild that resumes (issue 14 items 3 and 5; md's recovery_offset): `replace` onto a new disk
 * is cut short at a random step (seeded: the process "killed", the rebuild abandoned with the
 * volume never closed, or the volume closed under it), with client writes going on meanwhile.
 * The configuration on every member holds the rebuild's last checkpoint; the next read-write open
 * continues from it, copying less than the whole member, and the result is byte-exact, scrub
 * clean, and holds the data by itself (another member failed, everything reads the same).
 * A region the intent log found dirty below the checkpoint is copied again (a client write there
 * may have missed the new disk). TSNFS_VOLUME_SEED repeats a run.
 */
import t from 'tap'
import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import type { ParentKind } from '../../../vfs/volume/config.ts'
import { validateConfig } from '../../../vfs/volume/config.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { LAYERS } from '../../../vfs/volume/factory.ts'
import { IntentBitmap } from '../../../vfs/volume/intent-bitmap.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { rebuildMember, replaceMember } from '../../../vfs/volume/member-state.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { openVolumeOn } from '../../../vfs/volume/open-volume.ts'
import type { OpenVolume } from '../../../vfs/volume/open-volume.ts'
import { dataIndexOn, parityMember } from '../../../vfs/volume/parity.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { below, contents, CountingDevice, randomBytes, rng, seedOf } from './volume-helpers.ts'

const KiB = 1024
const DATA = 2048 * KiB
const STEP = 64 * KiB
const CHECKPOINT = 256 * KiB

/** A disk whose every operation hangs once frozen, as if the process died: nothing more reaches it. */
class Freezable extends PassThroughDevice {
  frozen = false
  #hang<T>(go: () => Promise<T>): Promise<T> {
    return this.frozen ? new Promise<T>(() => undefined) : go()
  }
  override read(offset: number, length: number): Promise<Buffer> {
    return this.#hang(() => this.inner.read(offset, length))
  }
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.#hang(() => this.inner.readInto(offset, target))
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    return this.#hang(() => this.inner.write(offset, data))
  }
  override flush(): Promise<void> {
    return this.#hang(() => this.inner.flush())
  }
  override close(): Promise<void> {
    return Promise.resolve()
  }
}

/** A disk that outlives the volumes opened on it (a volume closes its disks). */
class KeepOpen extends PassThroughDevice {
  override close(): Promise<void> {
    return Promise.resolve()
  }
}

interface Built {
  disks: MemoryDevice[]
  model: Buffer
}

async function build(level: ParentKind, n: number, r: () => number): Promise<Built> {
  const disks = Array.from({ length: n }, () => new MemoryDevice(MEMBER_RESERVED + DATA))
  await createVolume(`resume-${level}`, level, disks.map((d, i) => ({ path: `disk${i}`, dev: new KeepOpen(d) })), { unit: 16 * KiB, regionSize: 64 * KiB, random: (k) => randomBytes(r, k) })
  const v = await open(disks)
  const model = randomBytes(r, v.device.size)
  await v.device.write(0, model)
  await v.device.flush()
  await v.device.flush()
  await v.close()
  return { disks, model }
}

function open(disks: readonly MemoryDevice[], extra: Parameters<typeof openVolumeOn>[1] = {}, wrap: (d: MemoryDevice, i: number) => PassThroughDevice = (d) => new KeepOpen(d)): Promise<OpenVolume> {
  return openVolumeOn(disks.map((d, i) => ({ path: `disk${i}`, dev: wrap(d, i) })), extra)
}

function topLayer(v: OpenVolume): MirrorDevice | Raid5Device {
  const layer = v.device
  if (!(layer instanceof MirrorDevice || layer instanceof Raid5Device)) throw new Error('a mirror or RAID-5 on top')
  return layer
}

async function scrubClean(t: Test, layer: MirrorDevice | Raid5Device, what: string): Promise<void> {
  if (layer instanceof Raid5Device) t.equal((await layer.scrub()).mismatches, 0, `${what}: scrub finds no parity mismatch`)
  else t.equal((await layer.scrub()).mismatchRanges, 0, `${what}: scrub finds no leg mismatch`)
}

interface Interrupted extends Built {
  fresh: MemoryDevice
  replaced: number
  newUuid: string
  stop: number
  checkpoints: number[]
}

/** A replace of a random member onto a fresh disk, killed or closed at a random step after a checkpoint, client writes meanwhile. */
async function interrupt(level: ParentKind, n: number, r: () => number, how: 'killed' | 'closed', t: Test): Promise<Interrupted> {
  const built = await build(level, n, r)
  const { disks, model } = built
  const fresh = new MemoryDevice(MEMBER_RESERVED + DATA)
  const replaced = below(r, n)
  const steps = DATA / STEP
  // After the first checkpoint, and eight steps before the end: the kill or close lands while the rebuild still runs.
  const stop = CHECKPOINT / STEP + 1 + below(r, steps - CHECKPOINT / STEP - 9)
  const frozen = [...disks, fresh].map((d) => new Freezable(d))
  const newDisk = frozen[n]!
  const v = await open(disks, {}, (_, i) => frozen[i]!)
  const { uuid: newUuid } = await replaceMember(v, v.config.members[replaced]!.uuid, { path: 'new', dev: newDisk })
  const layer = topLayer(v)
  if (layer instanceof Raid5Device) layer.fail(replaced)
  let step = 0
  let chain = Promise.resolve()
  let stopped: Promise<void> | undefined
  const checkpoints: number[] = []
  const rebuild = rebuildMember(v, newUuid, layer, replaced, LAYERS.partition(newDisk, MEMBER_RESERVED, DATA), {
    stepBytes: STEP,
    checkpointBytes: CHECKPOINT,
    onCheckpoint: async (at) => {
      checkpoints.push(at)
    },
    onProgress: () => {
      if (++step > stop) return
      // A client write somewhere in the volume, below or above the watermark.
      const length = 1 + below(r, 8 * KiB)
      const offset = below(r, model.length - length)
      const data = randomBytes(r, length)
      data.copy(model, offset)
      chain = chain.then(() => v.device.write(offset, data))
      if (step !== stop) return
      // Killed: once the client's writes are done, nothing more reaches any disk (its memory is lost).
      stopped = how === 'killed' ? chain.then(() => { for (const f of frozen) f.frozen = true }) : chain.then(() => v.close())
    },
  })
  if (how === 'closed') await t.rejects(rebuild, `the volume closed at step ${stop} of ${steps}: the rebuild stops`)
  else void rebuild.catch(() => undefined)
  while (stopped === undefined) await new Promise((resolve) => setImmediate(resolve))
  await stopped
  t.comment(`member ${replaced} replaced, ${how} at step ${stop} of ${steps}, checkpoints ${checkpoints.join(', ')}`)
  t.ok(checkpoints.length > 0, 'at least one checkpoint before')
  return { ...built, fresh, replaced, newUuid, stop, checkpoints }
}

/** Disks, with the new one in the replaced member's place. */
function withNew(i: Interrupted): MemoryDevice[] {
  return i.disks.map((d, k) => (k === i.replaced ? i.fresh : d))
}

/**
 * Resumes at open, counting the bytes written to the new member's data area; the volume must then
 * be whole, clean, and read one of `models` byte for byte (i.model by default).
 */
async function resume(t: Test, i: Interrupted, n: number, models: readonly Buffer[] = [i.model]): Promise<number> {
  const counting = new CountingDevice(new KeepOpen(i.fresh))
  const started: (number | undefined)[] = []
  const onEvent = (e: VolumeEvent): void => {
    if (e.kind === 'rebuild-started') started.push(e.offset)
  }
  const again = await open(withNew(i), { rebuild: { stepBytes: STEP }, onEvent }, (d, k) => (k === i.replaced ? counting : new KeepOpen(d)))
  let copied: number
  try {
    copied = counting.writeLog.filter((w) => w.offset >= MEMBER_RESERVED).reduce((s, w) => s + w.length, 0)
    // Not `copied < DATA`: the resync of the regions the client writes left dirty writes the new member too, and
    // a rebuild that gave way to those writes may have checkpointed only once before the stop.
    const last = i.checkpoints[i.checkpoints.length - 1]
    t.strictSame(started, [last], `the resumed rebuild started at the checkpoint ${last}, not at 0 (${copied} bytes written to the ${DATA}-byte member, resync included)`)
    t.equal(again.config.members[i.replaced]?.state, 'ok', 'the member is ok at the end')
    const got = await contents(again.device)
    t.ok(models.some((m) => got.equals(m)), 'the volume reads byte-exact')
    await scrubClean(t, topLayer(again), 'after the resume')
  } finally {
    await again.close()
  }
  // The new member holds its part by itself: another member lost, everything reads the same.
  const other = (i.replaced + 1) % n
  const alone = await open(withNew(i))
  try {
    topLayer(alone).fail(other)
    const got = await contents(alone.device)
    t.ok(models.some((m) => got.equals(m)), `member ${other} lost: the volume still reads byte-exact`)
  } finally {
    await alone.close()
  }
  return copied
}

async function checkpointOnDisk(i: Interrupted): Promise<unknown[]> {
  const v = await open(withNew(i), { readOnly: true })
  const m = v.config.members[i.replaced]!
  await v.close()
  return [m.uuid, m.state, m.rebuilt]
}

for (const [level, n] of [['mirror', 2], ['raid5', 3]] as const) {
  for (const how of ['killed', 'closed'] as const) {
    t.test(`${level}: a rebuild ${how} at a random step resumes from its checkpoint at the next open`, async (t) => {
      const seed = seedOf()
      t.comment(`seed ${seed}`)
      const i = await interrupt(level, n, rng(seed), how, t)
      const last = i.checkpoints[i.checkpoints.length - 1]!
      t.strictSame(await checkpointOnDisk(i), [i.newUuid, 'rebuilding', last], 'the configuration holds the member rebuilding, at its last checkpoint')
      const copied = await resume(t, i, n)
      t.ok(copied >= DATA - last, `from the checkpoint at ${last} to the end (${DATA - last} bytes) at least`)
    })
  }

  t.test(`${level}: a region dirty at open below the checkpoint is resynced onto the new member too`, async (t) => {
    const seed = seedOf()
    t.comment(`seed ${seed}`)
    const r = rng(seed)
    const i = await interrupt(level, n, r, 'killed', t)
    const last = i.checkpoints[i.checkpoints.length - 1]!
    // A client write cut by the kill: marked dirty in the old members' bitmap, missed by the new one
    // (garbage where the region lies on it). The mirror's resync copies one leg over the others,
    // the new one included (below its checkpoint it is as good a source as any); RAID-5's
    // recomputes parity with it. An unacknowledged write's bytes are whatever they are: the
    // volume must only be consistent, and read the old members' bytes or the new one's there.
    const region = { offset: 64 * KiB, length: 64 * KiB }
    const row = (n - 1) * 16 * KiB
    const [from, to] = level === 'mirror' ? [region.offset, region.offset + region.length] : [(region.offset / row) * 16 * KiB, ((region.offset + region.length) / row) * 16 * KiB]
    t.ok(to <= last, `the region lies on the new member at ${from}…${to}, below the checkpoint ${last}`)
    const copies = i.disks.flatMap((dev, k) => (k === i.replaced ? [] : [{ dev, offset: INTENT_OFFSET, length: INTENT_LENGTH }]))
    const bitmap = await IntentBitmap.open(copies, i.model.length, { regionSize: 64 * KiB })
    await bitmap.mark(region.offset + 10, 3000)
    await i.fresh.write(MEMBER_RESERVED + from, Buffer.alloc(to - from, 0xee))
    const fromNew = Buffer.from(i.model)
    if (level === 'mirror') fromNew.fill(0xee, from, to)
    else {
      // Each 0xee unit of the new member is a data unit or the parity of its stripe.
      for (let s = from / (16 * KiB); s < to / (16 * KiB); s++) {
        const p = parityMember(s, n)
        if (p === i.replaced) continue
        const d = dataIndexOn(s, i.replaced, n)
        fromNew.fill(0xee, s * row + d * 16 * KiB, s * row + (d + 1) * 16 * KiB)
      }
    }
    const copied = await resume(t, i, n, level === 'mirror' ? [i.model, fromNew] : [fromNew])
    t.ok(copied >= DATA - last, `the resume copied from the checkpoint on: ${copied} bytes`)
  })
}

t.test('a checkpoint is dropped to 0 when the volume is opened read-write without continuing that rebuild', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const i = await interrupt('mirror', 2, rng(seed), 'killed', t)
  // Opened without the new disk: the volume will be written without it, so its checkpoint goes.
  const without = await open(i.disks.filter((_, k) => k !== i.replaced))
  t.equal(without.missing.length, 1, 'the mirror runs on one leg')
  await without.device.write(0, Buffer.alloc(4096, 0x55))
  Buffer.alloc(4096, 0x55).copy(i.model, 0)
  await without.close()
  const [, state, rebuilt] = await checkpointOnDisk(i)
  t.strictSame([state, rebuilt], ['rebuilding', 0], 'still rebuilding, from 0')
  const counting = new CountingDevice(new KeepOpen(i.fresh))
  const again = await open(withNew(i), { rebuild: { stepBytes: STEP } }, (d, k) => (k === i.replaced ? counting : new KeepOpen(d)))
  try {
    const copied = counting.writeLog.filter((w) => w.offset >= MEMBER_RESERVED).reduce((sum, w) => sum + w.length, 0)
    t.ok(copied >= DATA, `the whole member rebuilt again (${copied} bytes written to it)`)
    topLayer(again).fail((i.replaced + 1) % 2)
    t.ok((await contents(again.device)).equals(i.model), 'the new leg alone holds the write made while it was away')
  } finally {
    await again.close()
  }
})

t.test('a rebuild checkpoint in the configuration is checked', async (t) => {
  const base = {
    version: 1,
    name: 'v',
    id: '0f'.repeat(16),
    seq: 1,
    root: { kind: 'mirror', children: [{ kind: 'disk', member: 'aa'.repeat(16) }, { kind: 'disk', member: 'bb'.repeat(16) }] },
    snapshots: [],
    flags: { intentBitmap: true, regionSize: 65536 },
  }
  const withMember = (m: object): unknown => ({ ...base, members: [{ uuid: 'aa'.repeat(16), size: 8192, state: 'ok' }, { uuid: 'bb'.repeat(16), size: 8192, ...m }] })
  t.strictSame(validateConfig(withMember({ state: 'rebuilding', rebuilt: 4096 })).members[1], { uuid: 'bb'.repeat(16), size: 8192, state: 'rebuilding', rebuilt: 4096 })
  t.throws(() => validateConfig(withMember({ state: 'ok', rebuilt: 4096 })), { code: 'VOLUME_LAYOUT', message: /only a rebuilding member has a rebuild checkpoint/ })
  t.throws(() => validateConfig(withMember({ state: 'rebuilding', rebuilt: 8704 })), { code: 'VOLUME_LAYOUT', message: /members\[1\]\.rebuilt/ })
  t.throws(() => validateConfig(withMember({ state: 'rebuilding', rebuilt: 100 })), { code: 'VOLUME_LAYOUT', message: /multiple of 512/ })
})
