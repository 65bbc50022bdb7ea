import { setTimeout as sleep } from 'node:timers/promises'
import type { RebuildOptions } from './layer.ts'
import { VolumeError } from './layer.ts'

export const DEFAULT_STEP = 1024 * 1024
/** A step is one allocation: refuse a caller's step larger than this rather than allocate it. */
export const MAX_STEP = 64 * 1024 * 1024

export interface Region {
  readonly offset: number
  readonly length: number
}

/**
 * Walks `regions` in steps of at most `stepBytes`, awaiting `step` for each, so client I/O gets
 * its turn between steps; with a rate, sleeps after a step until the bytes done so far are no
 * ahead of the rate (md's speed_limit_max), so total time ≥ bytes / rate.
 */
export async function pacedSteps(
  regions: readonly Region[],
  opts: RebuildOptions,
  step: (offset: number, length: number) => Promise<void>,
  /** Aborted when the volume closes: a slow rate's sleep must not keep a closed volume's copy (and the process) alive. */
  signal?: AbortSignal,
): Promise<number> {
  const stepBytes = opts.stepBytes ?? DEFAULT_STEP
  if (!Number.isSafeInteger(stepBytes) || stepBytes <= 0 || stepBytes > MAX_STEP) {
    throw new VolumeError('VOLUME_LAYOUT', `step of ${stepBytes} bytes: must be 1 … ${MAX_STEP}`)
  }
  const rate = opts.rateBytesPerSec ?? 0
  if (!Number.isFinite(rate) || rate < 0) throw new VolumeError('VOLUME_LAYOUT', `rate ${rate} bytes/s is not a non-negative number`)
  const total = regions.reduce((sum, r) => sum + r.length, 0)
  const started = performance.now()
  let done = 0
  for (const r of regions) {
    for (let pos = r.offset; pos < r.offset + r.length; pos += stepBytes) {
      const n = Math.min(stepBytes, r.offset + r.length - pos)
      signal?.throwIfAborted()
      await step(pos, n)
      done += n
      opts.onProgress?.(done, total)
      if (rate > 0) {
        const ahead = (done / rate) * 1000 - (performance.now() - started)
        if (ahead > 0) {
          try {
            await sleep(ahead, undefined, signal === undefined ? {} : { signal })
          } catch (err) {
            signal?.throwIfAborted()
            throw err
          }
        }
      }
    }
  }
  return done
}

/** Sorted, merged, clipped to [0, size): a log read from disk may hold anything. */
export function clipRegions(regions: readonly Region[], size: number): Region[] {
  const sorted = regions
    .map((r) => ({ offset: Math.max(0, r.offset), end: Math.min(size, r.offset + r.length) }))
    .filter((r) => Number.isSafeInteger(r.offset) && Number.isSafeInteger(r.end) && r.end > r.offset)
    .sort((a, b) => a.offset - b.offset)
  const out: { offset: number; end: number }[] = []
  for (const r of sorted) {
    const last = out.at(-1)
    if (last !== undefined && r.offset <= last.end) last.end = Math.max(last.end, r.end)
    else out.push({ ...r })
  }
  return out.map((r) => ({ offset: r.offset, length: r.end - r.offset }))
}

/** The longest one copy step gives way to clients: a slow step must not stall the copy for seconds. */
export const MAX_GIVE_WAY_MS = 200

/**
 * Client I/O a background copy yields to, as RAID-5's rebuild does (raid5/rebuild.ts): a step during
 * which clients read or wrote is followed by a pause as long as the step took (at most
 * MAX_GIVE_WAY_MS), so clients keep about half the disks' time; idle, the copy runs flat out
 * (md drops a resync to its minimum speed while the array has other I/O). The layer calls
 * `touch` on every client read and write, and wraps each copy step in `step`.
 */
export class ClientTurns {
  #ops = 0
  /** Steps that saw client I/O and gave way: what the tests count. */
  gaveWay = 0

  touch(): void {
    this.#ops++
  }

  async step(work: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    const seen = this.#ops
    const began = performance.now()
    await work()
    if (this.#ops === seen) return
    this.gaveWay++
    try {
      await sleep(Math.min(MAX_GIVE_WAY_MS, performance.now() - began), undefined, signal === undefined ? {} : { signal })
    } catch (err) {
      signal?.throwIfAborted()
      throw err
    }
  }
}
