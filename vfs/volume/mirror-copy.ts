import { closedError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { RebuildOptions } from './layer.ts'
import { DEFAULT_CHECKPOINT, VolumeError } from './layer.ts'
import type { Leg, MirrorLegs } from './mirror-legs.ts'
import { pacedSteps } from './paced-steps.ts'
import type { Region } from './paced-steps.ts'

/**
 * The mirror's background copies: rebuild of a replaced leg, resync of dirty regions, scrub.
 * Every step holds the exclusive range lock while it reads the good copy and writes the others,
 * so no client write to that range is in flight between the read and the write: the bytes a
 * step writes are never older than what a client has been told is written.
 */

/**
 * Copies the volume onto the rebuilding leg `index` (which holds `dev`) from `opts.resumeFrom`
 * (0 by default) to the end, then flushes it and marks it ok; every `checkpointBytes` it flushes
 * the leg and awaits `opts.onCheckpoint`. Resolves with the bytes copied.
 */
export async function rebuildLeg(legs: MirrorLegs, index: number, dev: BlockDevice, size: number, opts: RebuildOptions): Promise<number> {
  const from = opts.resumeFrom ?? 0
  const every = opts.checkpointBytes ?? DEFAULT_CHECKPOINT
  let checkpointed = from
  legs.emit({ kind: 'rebuild-started', member: index, offset: from, length: size - from, message: `leg ${index}: rebuilding ${size - from} bytes${from > 0 ? ` from ${from}` : ''}` })
  let copied: number
  try {
    copied = await pacedSteps([{ offset: from, length: size - from }], opts, async (offset, length) => {
      // A step that saw client I/O gives way for as long as it took, as RAID-5's rebuild does.
      await legs.clients.step(() => legs.lock.with(offset, length, true, async () => {
        if (legs.closed) throw closedError('rebuild')
        const leg = current(legs, index, dev)
        const buf = Buffer.alloc(length)
        await legs.readInto(offset, buf, { locked: true, exclude: index })
        await dev.write(offset, buf)
        leg.rebuilt = offset + length
        legs.emit({ kind: 'rebuild-progress', member: index, offset, length, message: `leg ${index}: ${offset + length} of ${size} bytes rebuilt` })
      }), legs.stopSignal)
      const done = offset + length
      if (opts.onCheckpoint !== undefined && done - checkpointed >= every && done < size) {
        await dev.flush()
        await opts.onCheckpoint(done)
        checkpointed = done
      }
    },
    legs.stopSignal,
    )
    await dev.flush()
  } catch (err) {
    legs.fail(index, dev, err)
    if (legs.closed) throw closedError('rebuild')
    throw err instanceof VolumeError ? err : new VolumeError('VOLUME_MEMBER', `rebuild of leg ${index} failed`, { cause: err })
  }
  const leg = current(legs, index, dev)
  leg.state = 'ok'
  delete leg.rebuilt
  legs.emit({ kind: 'rebuild-done', member: index, offset: 0, length: size, message: `leg ${index}: rebuilt` })
  return copied
}

/** The leg `index`, if it still holds `dev` and is rebuilding; VOLUME_MEMBER if a `fail` or another `replace` took it over. */
function current(legs: MirrorLegs, index: number, dev: BlockDevice): Leg {
  const leg = legs.legs[index]
  if (leg?.dev !== dev || leg.state !== 'rebuilding') throw new VolumeError('VOLUME_MEMBER', `leg ${index} is no longer the one being rebuilt`)
  return leg
}

/** Copies `regions` from the first ok leg that reads them to every other live leg. Resolves with bytes copied. */
export async function copyRegions(legs: MirrorLegs, regions: readonly Region[], opts: RebuildOptions): Promise<number> {
  return pacedSteps(regions, opts, (offset, length) =>
    legs.lock.with(offset, length, true, async () => {
      if (legs.closed) throw closedError('resync')
      const buf = Buffer.alloc(length)
      const source = await legs.readInto(offset, buf, { locked: true, inOrder: true })
      const targets = legs.live().filter((i) => i !== source)
      await Promise.all(targets.map((i) => writeLeg(legs, i, offset, buf)))
    }),
    legs.stopSignal,
  )
}

async function writeLeg(legs: MirrorLegs, i: number, offset: number, data: Uint8Array): Promise<boolean> {
  const dev = (legs.legs[i] as Leg).dev
  try {
    await dev.write(offset, data)
    return true
  } catch (err) {
    legs.fail(i, dev, err)
    return false
  }
}

export interface ScrubOptions extends RebuildOptions {
  /** Copy the first ok leg's bytes over every leg that differs (a mirror cannot tell which copy is right; md's "repair"). */
  repair?: boolean
}

export interface ScrubResult {
  /** Volume bytes compared. */
  readonly bytes: number
  /** Per leg and step, a span from the first to the last differing byte. */
  readonly mismatchRanges: number
  /** Bytes that differ from the first ok leg, summed over legs. */
  readonly mismatchBytes: number
  /** Mismatch ranges rewritten (repair only). */
  readonly repaired: number
}

/** Reads every range from every ok leg and compares with the first one that reads it. */
export async function scrubLegs(legs: MirrorLegs, size: number, opts: ScrubOptions): Promise<ScrubResult> {
  let mismatchRanges = 0
  let mismatchBytes = 0
  let repaired = 0
  const bytes = await pacedSteps([{ offset: 0, length: size }], opts, (offset, length) =>
    legs.lock.with(offset, length, true, async () => {
      if (legs.closed) throw closedError('scrub')
      const reference = Buffer.alloc(length)
      const source = await legs.readInto(offset, reference, { locked: true, inOrder: true })
      for (const i of legs.ok().filter((k) => k > source)) {
        const copy = Buffer.alloc(length)
        try {
          await (legs.legs[i] as Leg).dev.readInto(offset, copy)
        } catch {
          // As on a client read: rewrite the range from the good copy, and fail the leg only if that fails too.
          if (await writeLeg(legs, i, offset, reference)) {
            legs.emit({ kind: 'read-repaired', member: i, offset, length, message: `leg ${i}: ${length} bytes at ${offset} rewritten from leg ${source}` })
          }
          continue
        }
        const diff = differing(reference, copy)
        if (diff === undefined) continue
        mismatchRanges++
        mismatchBytes += diff.count
        legs.emit({ kind: 'scrub-mismatch', member: i, offset: offset + diff.first, length: diff.last - diff.first + 1, message: `leg ${i}: ${diff.count} bytes differ from leg ${source}` })
        if (opts.repair === true && (await writeLeg(legs, i, offset + diff.first, reference.subarray(diff.first, diff.last + 1)))) repaired++
      }
    }),
    legs.stopSignal,
  )
  return { bytes, mismatchRanges, mismatchBytes, repaired }
}

function differing(a: Buffer, b: Buffer): { first: number; last: number; count: number } | undefined {
  if (a.equals(b)) return undefined
  let first = -1
  let last = -1
  let count = 0
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue
    if (first < 0) first = i
    last = i
    count++
  }
  return { first, last, count }
}
