/*
 * The crash checker's recording (crash-check.ts): mkfs on a MemoryDevice, then the seeded workload
 * (crash-workload.ts) on the engine over a RecordingDevice (commit timer off, so the log depends on
 * the seed alone) and on a MemoryVfs as the model, one operation on each in turn, noting for each
 * how many flushes had completed when it was issued and when its reply resolved.
 */
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { dumpVfs } from './engine-helpers.ts'
import type { TreeDump } from './engine-helpers.ts'
import { makeWorkload, readAll, resolve } from './crash-workload.ts'
import type { Op } from './crash-workload.ts'

/** A dump as text with its paths sorted (readdir order differs between backends). */
export function canon(d: TreeDump | undefined): string {
  if (d === undefined) return 'undefined'
  return JSON.stringify(Object.keys(d).sort().map((k) => [k, d[k]]))
}

export interface RecordOptions {
  seed: number
  blockSize: 1024 | 4096
  ops: number
  splitCreates: number
  /** Length of the names created in /big (default 51: 60-byte entries). */
  splitNameLength?: number
  imageBytes?: number
}

/** What a workload did, on whatever device recorded it. */
export interface WorkloadLog {
  ops: Op[]
  /** The recorder's clock (completed flushes, or a joint recorder's tick) when op i was issued / when its reply resolved. */
  issuedAt: number[]
  ackedAt: number[]
  /** Model dump after j ops (j = 0 … ops.length). */
  models: TreeDump[]
  /** For an overwrite op j: the file's bytes before and after it, by path (every hard link). */
  overwrites: Map<number, { before: Buffer; after: Buffer }>
  /** Size of /big at the end: more than one block means it was split (indexed). */
  bigDirBytes: number
  /** Removes of a held file that freed its inode on the engine: op index and the engine's handle. */
  freed: Array<{ op: number; ref: FileRef }>
  /** How many ops of each kind (the first word of their text) the workload has. */
  kinds: Map<string, number>
}

export interface Recorded extends WorkloadLog {
  rec: RecordingDevice
  base: MemoryDevice
}

/** mkfs, then the workload on the engine (over a recorder) and on the model. */
export async function record(o: RecordOptions): Promise<Recorded> {
  const size = o.imageBytes ?? 16 * 2 ** 20
  const base = new MemoryDevice(size)
  await makeFileSystem(base, { zeroed: true, blockSize: o.blockSize })
  const rec = new RecordingDevice(base.clone())
  return { rec, base, ...(await runWorkload(o, rec, () => rec.flushes.length)) }
}

/**
 * The workload on the engine over `dev` (already holding a file system) and on the model; `clock`
 * reads the recorder's clock, noted when each op is issued and when its reply resolves. The
 * engine is closed at the end (`dev` with it).
 */
export async function runWorkload(o: RecordOptions, dev: BlockDevice, clock: () => number): Promise<WorkloadLog> {
  const engine = await openEngineOn(dev, { commitIntervalMs: 0 })
  const model = new MemoryVfs()
  const ops = makeWorkload(o.seed, o.ops, o.splitCreates, o.splitNameLength)
  const issuedAt: number[] = []
  const ackedAt: number[] = []
  const models: TreeDump[] = [await dumpVfs(model)]
  const overwrites = new Map<number, { before: Buffer; after: Buffer }>()
  const freed: Array<{ op: number; ref: FileRef }> = []
  const kinds = new Map<string, number>()
  for (const op of ops) kinds.set(op.text.split(' ')[0]!, (kinds.get(op.text.split(' ')[0]!) ?? 0) + 1)
  let bigDirBytes: number
  try {
    for (const [j, op] of ops.entries()) {
      const before = op.overwrite === undefined ? undefined : await readAll(model, op.overwrite)
      await op.run(model)
      if (op.overwrite !== undefined && before !== undefined) {
        if (op.truncateTo === undefined) overwrites.set(j, { before, after: (await readAll(model, op.overwrite)) ?? Buffer.alloc(0) })
        else if (op.truncateTo < before.length) {
          // Shrinking: the tail of the new last block is zeroed in place before the size commits (ext4 too).
          const end = Math.min(before.length, Math.ceil(op.truncateTo / o.blockSize) * o.blockSize)
          overwrites.set(j, { before, after: Buffer.from(before).fill(0, op.truncateTo, end) })
        }
      }
      models.push(await dumpVfs(model))
      issuedAt.push(clock())
      await op.run(engine)
      ackedAt.push(clock())
      const mine = op.outcome?.get(engine)
      if (mine !== op.outcome?.get(model)) throw new Error(`${op.text}: the engine met ${mine}, the model ${op.outcome?.get(model)}`)
      const ref = op.frees?.get(engine)
      if (ref !== undefined) freed.push({ op: j, ref })
      if (op.frees !== undefined && op.frees.has(model) !== (ref !== undefined)) throw new Error(`${op.text}: freed the inode on one side only`)
    }
    const got = await dumpVfs(engine)
    const want = models[models.length - 1]
    if (canon(got) !== canon(want)) throw new Error('the engine and the model differ at the end of the workload (run engine-model.test.ts)')
    bigDirBytes = Number((await engine.getattr(await resolve(engine, '/big'))).size)
  } finally {
    await engine.close()
  }
  return { ops, issuedAt, ackedAt, models, overwrites, bigDirBytes, freed, kinds }
}

