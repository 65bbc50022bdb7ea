import { setTimeout as sleep, setImmediate as yieldTurn } from 'node:timers/promises'
import type { BlockDevice } from '../../engine/blockdev/block-device.ts'
import { DEFAULT_CHECKPOINT, VolumeError } from '../layer.ts'
import type { RebuildOptions } from '../layer.ts'
import { DEFAULT_STEP, pacedSteps } from '../paced-steps.ts'
import type { Raid5Core } from './core.ts'
import { withStripes } from './core.ts'
import { errorMessage } from './members.ts'
import { reconstruct } from './read-path.ts'

/** The longest a rebuild step gives way to clients (a slow step must not stall the rebuild for seconds). */
const MAX_YIELD_MS = 200

/** What a rebuild needs of the device beyond the core. */
export interface RebuildContext {
  /** Client reads and writes ever started: a rebuild step that saw some gives way. */
  clientOps(): number
  /** Aborted when the volume closes: a rebuild sleeping for its rate must not keep it alive. */
  readonly closing: AbortSignal
}

/**
 * Copies member `index` (already `dev`, state 'rebuilding', rebuilt up to `from` bytes) stripe
 * range by stripe range: each step's units are recomputed from the others under those stripes'
 * locks, so client writes in between are never lost. Resolves with the bytes rebuilt once the
 * new member is whole and flushed (the caller marks it ok).
 */
export async function rebuildMember(core: Raid5Core, ctx: RebuildContext, index: number, dev: BlockDevice, from: number, opts: RebuildOptions): Promise<number> {
  const { members, unit } = core
  const total = core.stripes * unit
  const every = opts.checkpointBytes ?? DEFAULT_CHECKPOINT
  let checkpointed = from
  // A checkpoint runs beside the copy, one at a time: it flushes the new member and records the
  // progress in every member's superblock (a flush each), and the copy waiting for that took
  // almost half of an online rebuild's time (256 MiB members: 130–140 MB/s without, 69–78 with).
  let checkpoint: Promise<void> = Promise.resolve()
  // Whole units per step (at least one), paced as the mirror's copies are; client I/O gets its
  // turn between steps, and a rate limit stretches them to its pace.
  const stepBytes = Math.max(1, Math.floor((opts.stepBytes ?? DEFAULT_STEP) / unit)) * unit
  const rebuiltBytes = await pacedSteps(
    [{ offset: from, length: total - from }],
    { stepBytes, ...(opts.rateBytesPerSec === undefined ? {} : { rateBytesPerSec: opts.rateBytesPerSec }) },
    async (pos, n) => {
      const began = performance.now()
      const seen = ctx.clientOps()
      // A whole step at once (one read per member, one write): stripe by stripe the rebuild ran
      // at a third of the members' speed, a round trip per 64 KiB.
      const first = pos / unit
      await withStripes(core, first, n / unit, () => rebuildStripes(core, index, first, n / unit))
      // Clients came meanwhile: leave them as much time as the step took (md drops a resync to
      // its minimum speed when the array has other I/O), so they keep about half the disks;
      // idle, the rebuild runs flat out.
      if (ctx.clientOps() !== seen) await giveWay(ctx.closing, Math.min(MAX_YIELD_MS, performance.now() - began))
      const done = pos + n
      opts.onProgress?.(done, total)
      members.emit('rebuild-progress', `member ${index}: ${done} of ${total} bytes rebuilt`, index, 0, done)
      const onCheckpoint = opts.onCheckpoint
      if (onCheckpoint !== undefined && done - checkpointed >= every && done < total) {
        await checkpoint
        checkpoint = (async () => {
          await flushRebuilt(core, index, dev)
          await onCheckpoint(done)
        })()
        // Awaited at the next checkpoint or the end; until then its rejection is not unhandled.
        checkpoint.catch(() => undefined)
        checkpointed = done
      }
      await yieldTurn()
    },
    ctx.closing,
  ).finally(() => checkpoint.catch(() => undefined))
  await checkpoint
  await flushRebuilt(core, index, dev)
  return rebuiltBytes
}

async function flushRebuilt(core: Raid5Core, index: number, dev: BlockDevice): Promise<void> {
  try {
    await dev.flush()
  } catch (err) {
    core.members.markFailed(index, errorMessage(err))
    throw err
  }
}

/** Rebuilds `count` stripes from `first` of member `index` (the caller holds their locks). */
async function rebuildStripes(core: Raid5Core, index: number, first: number, count: number): Promise<void> {
  const { members, unit } = core
  const m = members.get(index)
  if (m.state !== 'rebuilding') {
    throw new VolumeError(members.failed ? 'VOLUME_FAILED' : 'VOLUME_MEMBER', `rebuild of member ${index} stopped: ${m.reason ?? 'it left service'}`)
  }
  const units = core.runBuffers.take(count * unit)
  try {
    // Readable at the last stripe means readable at every earlier one (rebuilt only grows).
    await reconstruct(core, first + count - 1, index, first * unit, units)
    try {
      await m.dev.write(first * unit, units)
    } catch (err) {
      members.markFailed(index, errorMessage(err))
      throw err
    }
  } finally {
    core.runBuffers.give([units])
  }
  m.rebuilt = first + count
}

/** Sleeps `ms`, or until the volume closes (then throws its closed error, as pacedSteps does). */
async function giveWay(closing: AbortSignal, ms: number): Promise<void> {
  try {
    await sleep(ms, undefined, { signal: closing })
  } catch (err) {
    closing.throwIfAborted()
    throw err
  }
}
