import { setTimeout as sleep, setImmediate as yieldTurn } from 'node:timers/promises'
import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { DEFAULT_CHECKPOINT, DEFAULT_UNIT, VolumeError } from './layer.ts'
import type { IntentLog, Layer, LayerStatus, MemberState, RebuildOptions, RedundantOptions, VolumeEventKind, VolumeEventSink } from './layer.ts'
import { DEFAULT_STEP, pacedSteps } from './paced-steps.ts'
import { dataIndexOn, dataMember, locate, parityMember, xorInto, xorOf } from './parity.ts'
import { RunBuffers } from './raid5-buffers.ts'
import { StripeLocks } from './stripe-lock.ts'
import { WriteGenerations } from './write-generations.ts'

export interface Raid5Options extends RedundantOptions {
  /** Bytes per unit (md's chunk); a multiple of every member's sector size. */
  unit?: number
}

export interface ScrubResult {
  readonly stripes: number
  readonly mismatches: number
  readonly repaired: number
}

/** Part of one data unit a write covers: [start, end) inside the unit, and its new bytes. */
interface Piece {
  readonly dataIndex: number
  readonly start: number
  readonly end: number
  readonly data: Uint8Array
}

interface Member {
  dev: BlockDevice
  state: MemberState
  reason?: string
  /** While rebuilding: stripes from 0 already whole on this member. */
  rebuilt: number
}

/** Default rebuild step: 1 MiB of each member between turns for client I/O. */

/**
 * RAID-5 over n ≥ 3 members in md's left-symmetric layout (parity.ts): every stripe holds n-1
 * data units and their XOR, so any one member can be lost and its units recomputed from the rest.
 *
 * Writes take the stripe's lock. A write covering every data unit of a stripe computes parity
 * from its own bytes and reads nothing; a partial one reads either the old bytes it replaces and
 * the old parity (read-modify-write) or the data units it leaves alone (reconstruct-write),
 * whichever reads fewer bytes. With a member missing, the same stripe update reconstructs the
 * missing unit's old bytes from the others where it needs them.
 *
 * A member whose read, write or flush fails is marked failed and no longer used; with two gone
 * the volume refuses writes (VOLUME_FAILED) and serves only reads of units on live members.
 * With an intent log, every write marks its range durably dirty before touching a member, so
 * after a crash `resync()` recomputes the parity of those regions only — the write hole closed.
 */
export class Raid5Device implements Layer {
  readonly kind = 'raid5' as const
  readonly size: number
  readonly sectorSize: number
  readonly readOnly: boolean
  readonly unit: number
  /** Stripes (units per member) the volume uses. */
  readonly stripes: number
  readonly #m: Member[]
  readonly #n: number
  readonly #locks = new StripeLocks()
  readonly #intent: IntentLog | undefined
  readonly #onEvent: VolumeEventSink | undefined
  #failed = false
  #closed = false
  readonly #closing = new AbortController()
  /** Client reads and writes ever started: a rebuild step that saw some gives way (see replace). */
  #clientOps = 0
  /** Numbers every member-writing operation for the intent log (a flush settles what it made durable). */
  readonly #generations = new WriteGenerations()
  /** A rebuild step's reads and units (1 MiB each by default), and a few degraded reads beside. */
  readonly #runBuffers = new RunBuffers(16 * 1024 * 1024)

  constructor(members: readonly BlockDevice[], opts: Raid5Options = {}) {
    if (members.length < 3) throw new VolumeError('VOLUME_LAYOUT', `RAID-5 needs at least 3 members, got ${members.length}`)
    const unit = opts.unit ?? DEFAULT_UNIT
    const sectorSize = Math.max(...members.map((d) => d.sectorSize))
    if (!Number.isSafeInteger(unit) || unit <= 0 || members.some((d) => unit % d.sectorSize !== 0)) {
      throw new VolumeError('VOLUME_LAYOUT', `unit ${unit} is not a positive multiple of every member's sector size`)
    }
    const stripes = Math.floor(Math.min(...members.map((d) => d.size)) / unit)
    if (stripes < 1) throw new VolumeError('VOLUME_LAYOUT', `the smallest member holds no whole unit of ${unit} bytes`)
    this.#n = members.length
    this.unit = unit
    this.stripes = stripes
    this.size = (this.#n - 1) * stripes * unit
    this.sectorSize = sectorSize
    this.readOnly = members.some((d) => d.readOnly)
    this.#m = members.map((dev) => ({ dev, state: 'ok', rebuilt: 0 }))
    this.#intent = opts.intent
    this.#onEvent = opts.onEvent
  }

  get members(): readonly BlockDevice[] {
    return this.#m.map((m) => m.dev)
  }

  status(): LayerStatus {
    return {
      kind: 'raid5',
      size: this.size,
      degraded: this.#m.some((m) => m.state !== 'ok'),
      failed: this.#failed,
      members: this.#m.map((m, index) => ({
        index,
        state: m.state,
        ...(m.reason !== undefined ? { reason: m.reason } : {}),
        ...(m.state === 'rebuilding' ? { rebuilt: m.rebuilt * this.unit } : {}),
      })),
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    if (this.#closed) throw closedError('read')
    checkRange(this.size, offset, target.length, 'read')
    this.#clientOps++
    const reads: Promise<void>[] = []
    for (let done = 0; done < target.length; ) {
      const place = locate(offset + done, this.#n, this.unit)
      const within = place.memberOffset - place.stripe * this.unit
      const n = Math.min(this.unit - within, target.length - done)
      reads.push(this.#readPiece(place.stripe, place.member, place.memberOffset, target.subarray(done, done + n)))
      done += n
    }
    await settleAll(reads)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.#closed) throw closedError('write')
    if (this.readOnly) throw readOnlyError(offset)
    checkRange(this.size, offset, data.length, 'write')
    if (data.length === 0) return
    this.#refuseIfFailed('write')
    this.#clientOps++
    await this.#tracked(async (generation) => {
      await this.#intent?.mark(offset, data.length, generation)
      const byStripe = new Map<number, Piece[]>()
      for (let done = 0; done < data.length; ) {
        const place = locate(offset + done, this.#n, this.unit)
        const start = place.memberOffset - place.stripe * this.unit
        const n = Math.min(this.unit - start, data.length - done)
        const pieces = byStripe.get(place.stripe) ?? []
        pieces.push({ dataIndex: place.dataIndex, start, end: start + n, data: data.subarray(done, done + n) })
        byStripe.set(place.stripe, pieces)
        done += n
      }
      // Whole stripes in a row go out as one write per member (a run of its units is contiguous
      // on it): stripe by stripe, a 1 MiB write cost 24 writes of 64 KiB, each a thread-pool round
      // trip, and the volume wrote at half the speed of one disk.
      const row = (this.#n - 1) * this.unit
      const firstFull = Math.ceil(offset / row)
      const endFull = Math.floor((offset + data.length) / row)
      const run = endFull - firstFull >= 2 ? { first: firstFull, count: endFull - firstFull } : null
      const jobs = [...byStripe]
        .filter(([stripe]) => run === null || stripe < run.first || stripe >= run.first + run.count)
        .map(([stripe, pieces]) => this.#locks.with(stripe, () => this.#writeStripe(stripe, pieces)))
      if (run !== null) {
        const at = run.first * row - offset
        jobs.push(this.#withStripes(run.first, run.count, () => this.#writeFullRun(run.first, run.count, data.subarray(at, at + run.count * row))))
      }
      await settleAll(jobs)
    })
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    // Only operations complete before the flush began are surely durable after it: the regions
    // they alone marked clear; one a running or later write marked stays dirty.
    const before = this.#generations.horizon()
    await this.#onLive((dev) => dev.flush())
    this.#refuseIfFailed('flush')
    await this.#intent?.settle(before)
  }

  /**
   * A clean close flushes the members and clears every bit their writes alone set, however
   * recent, so the next open resyncs nothing. Best effort: if it fails (a member gone), the bits
   * stay and the next open resyncs those regions, which is always safe.
   */
  async #finalSettle(): Promise<void> {
    const intent = this.#intent
    // Read-only: the bits found dirty at open were not resynced; they stay for a read-write open.
    if (intent?.settleFinal === undefined || this.readOnly) return
    try {
      const before = this.#generations.horizon()
      await this.#onLive((dev) => dev.flush())
      this.#refuseIfFailed('flush')
      await intent.settleFinal(before)
    } catch {
      // see above
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await this.#finalSettle()
    this.#closed = true
    // A rebuild sleeping for its rate must not keep a closed volume (and the process) alive.
    this.#closing.abort(closedError('rebuild'))
    await Promise.allSettled(this.#m.map((m) => m.dev.close()))
  }

  /** Takes a member out of service (an administrator's decision, or a test's). */
  fail(index: number): void {
    this.#member(index)
    this.#markFailed(index, 'failed by request')
  }

  /**
   * Puts `dev` in place of failed member `index` and rebuilds it online: each stripe's unit is
   * recomputed from the others under that stripe's lock, so client writes in between are never
   * lost; reads use the new member only below what is rebuilt. Resolves when it is whole, with
   * the bytes rebuilt. With `opts.resumeFrom` it continues a rebuild a crash cut short (see
   * RebuildOptions): the stripes below it are taken as whole (a resync started after this call
   * recomputes the dirty ones' parity with the new member's units).
   */
  async replace(index: number, dev: BlockDevice, opts: RebuildOptions = {}): Promise<number> {
    if (this.#closed) throw closedError('replace')
    const m = this.#member(index)
    if (m.state !== 'failed') throw new VolumeError('VOLUME_MEMBER', `member ${index} is ${m.state}; only a failed member can be replaced`)
    this.#refuseIfFailed('replace')
    if (dev.readOnly) throw new VolumeError('VOLUME_MEMBER', `the replacement for member ${index} is read-only`)
    if (dev.size < this.stripes * this.unit || this.unit % dev.sectorSize !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `the replacement (${dev.size} bytes, sectors of ${dev.sectorSize}) cannot hold ${this.stripes} units of ${this.unit}`)
    }
    const total = this.stripes * this.unit
    const from = opts.resumeFrom ?? 0
    if (!Number.isSafeInteger(from) || from < 0 || from > total || from % this.unit !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `resume from ${from}: not a unit boundary within the member's ${total} bytes`)
    }
    m.dev = dev
    m.state = 'rebuilding'
    m.rebuilt = from / this.unit
    delete m.reason
    this.#emit('rebuild-started', `rebuilding member ${index} (${total - from} bytes${from > 0 ? ` from ${from}` : ''})`, index, from, total - from)
    const every = opts.checkpointBytes ?? DEFAULT_CHECKPOINT
    let checkpointed = from
    // A checkpoint runs beside the copy, one at a time: it flushes the new member and records the
    // progress in every member's superblock (a flush each), and the copy waiting for that took
    // almost half of an online rebuild's time (256 MiB members: 130–140 MB/s without, 69–78 with).
    let checkpoint: Promise<void> = Promise.resolve()
    // Whole units per step (at least one), paced as the mirror's copies are; client I/O gets its
    // turn between steps, and a rate limit stretches them to its pace.
    const stepBytes = Math.max(1, Math.floor((opts.stepBytes ?? DEFAULT_STEP) / this.unit)) * this.unit
    const rebuiltBytes = await pacedSteps(
      [{ offset: from, length: total - from }],
      { stepBytes, ...(opts.rateBytesPerSec === undefined ? {} : { rateBytesPerSec: opts.rateBytesPerSec }) },
      async (pos, n) => {
        const began = performance.now()
        const seen = this.#clientOps
        // A whole step at once (one read per member, one write): stripe by stripe the rebuild ran
        // at a third of the members' speed, a round trip per 64 KiB.
        const first = pos / this.unit
        await this.#withStripes(first, n / this.unit, () => this.#rebuildStripes(index, first, n / this.unit))
        // Clients came meanwhile: leave them as much time as the step took (md drops a resync to
        // its minimum speed when the array has other I/O), so they keep about half the disks;
        // idle, the rebuild runs flat out.
        if (this.#clientOps !== seen) await this.#giveWay(Math.min(MAX_YIELD_MS, performance.now() - began))
        const done = pos + n
        opts.onProgress?.(done, total)
        this.#emit('rebuild-progress', `member ${index}: ${done} of ${total} bytes rebuilt`, index, 0, done)
        const onCheckpoint = opts.onCheckpoint
        if (onCheckpoint !== undefined && done - checkpointed >= every && done < total) {
          await checkpoint
          checkpoint = (async () => {
            await this.#flushRebuilt(index, dev)
            await onCheckpoint(done)
          })()
          // Awaited at the next checkpoint or the end; until then its rejection is not unhandled.
          checkpoint.catch(() => undefined)
          checkpointed = done
        }
        await yieldTurn()
      },
      this.#closing.signal,
    ).finally(() => checkpoint.catch(() => undefined))
    await checkpoint
    await this.#flushRebuilt(index, dev)
    m.state = 'ok'
    m.rebuilt = 0
    this.#emit('rebuild-done', `member ${index} rebuilt`, index, 0, total)
    return rebuiltBytes
  }

  async #flushRebuilt(index: number, dev: BlockDevice): Promise<void> {
    try {
      await dev.flush()
    } catch (err) {
      this.#markFailed(index, errorMessage(err))
      throw err
    }
  }

  /**
   * Recomputes every stripe's parity from its data and counts the stripes whose stored parity
   * differs; with `repair`, rewrites those parities. Needs every member in service. Progress is
   * in volume bytes checked, after each stripe.
   */
  async scrub(opts: { repair?: boolean; onProgress?: RebuildOptions['onProgress'] } = {}): Promise<ScrubResult> {
    if (this.#closed) throw closedError('scrub')
    const repair = opts.repair === true
    if (repair && this.readOnly) throw readOnlyError(0)
    if (repair) this.#refuseIfFailed('scrub')
    if (this.#m.some((m) => m.state !== 'ok')) throw new VolumeError('VOLUME_MEMBER', 'scrub needs every member in service')
    let mismatches = 0
    let repaired = 0
    for (let s = 0; s < this.stripes; s++) {
      const fixed = await this.#locks.with(s, () => this.#scrubStripe(s, repair))
      if (fixed !== 'match') mismatches++
      if (fixed === 'repaired') repaired++
      opts.onProgress?.((s + 1) * (this.#n - 1) * this.unit, this.size)
    }
    if (repaired > 0) await this.flush()
    return { stripes: this.stripes, mismatches, repaired }
  }

  /**
   * After an unclean shutdown: recomputes the parity of every stripe the intent log found dirty,
   * and only those; then flushes, which lets the log clear them. Returns the stripes rewritten.
   */
  async resync(): Promise<number> {
    if (this.#closed) throw closedError('resync')
    const dirty = this.#intent?.dirtyAtOpen() ?? []
    if (dirty.length === 0) return 0
    // Refused rather than tried: a member's read-only error would otherwise mark it failed.
    if (this.readOnly) throw readOnlyError(0)
    this.#refuseIfFailed('resync')
    const row = (this.#n - 1) * this.unit
    const stripes = new Set<number>()
    for (const r of dirty) {
      const last = Math.min(this.stripes - 1, Math.floor((r.offset + r.length - 1) / row))
      for (let s = Math.floor(r.offset / row); s <= last; s++) stripes.add(s)
    }
    this.#emit('resync-started', `resync of ${stripes.size} stripes in ${dirty.length} dirty regions`)
    let rewritten = 0
    let unsure = 0
    await this.#tracked(async () => {
      for (const s of stripes) {
        const outcome = await this.#locks.with(s, () => this.#resyncStripe(s))
        if (outcome === 'rewritten') rewritten++
        else if (outcome === 'data-missing') unsure++
      }
    })
    if (unsure === 0) {
      await this.flush()
    } else {
      // A dirty stripe missing a data unit cannot be made consistent (md refuses to start such an
      // array): flush what was rewritten but keep the bits, so the doubt survives another restart.
      await this.#onLive((dev) => dev.flush())
      this.#refuseIfFailed('resync')
    }
    this.#emit('resync-done', `resync rewrote the parity of ${rewritten} stripes; ${unsure} dirty stripes miss a data unit and stay dirty`)
    return rewritten
  }

  // ---- stripe operations (each runs under its stripe's lock) ----

  async #writeStripe(stripe: number, pieces: readonly Piece[]): Promise<void> {
    for (;;) {
      this.#refuseIfFailed('write')
      const plan = await this.#planParity(stripe, pieces)
      if (plan === 'retry') continue
      const writes: { member: number; offset: number; data: Uint8Array }[] = pieces.map((p) => ({
        member: dataMember(stripe, p.dataIndex, this.#n),
        offset: stripe * this.unit + p.start,
        data: p.data,
      }))
      if (plan !== null) writes.push({ member: parityMember(stripe, this.#n), offset: stripe * this.unit + plan.lo, data: plan.parity })
      // Every write is tried even if one fails: with all but one landed the stripe is consistent
      // for the new data (the lost member's unit is what the others now imply).
      const live = writes.filter((w) => this.#m[w.member]?.state !== 'failed')
      const results = await Promise.allSettled(live.map((w) => this.#dev(w.member).write(w.offset, w.data)))
      results.forEach((r, i) => {
        const w = live[i]
        if (r.status === 'rejected' && w !== undefined) this.#markFailed(w.member, errorMessage(r.reason))
      })
      this.#refuseIfFailed('write')
      return
    }
  }

  /**
   * Writes `count` whole stripes from `first` (the caller holds their locks): each member's units
   * of the run, data or parity, as one write per member. As for one whole stripe, nothing is read,
   * so a member out of service changes nothing but who is written: the others then imply its
   * units (and a rebuilding member takes its units at once).
   *
   * The data units go to the members straight from `data` (BlockDevice.writev), the parity from a
   * kept buffer: gathering every member's units into a buffer of its own first copied all the
   * data once more on the main thread. Where `data` is not 4-byte aligned the XOR would run byte
   * by byte, so there (and for members without writev) the units are copied together after all.
   */
  async #writeFullRun(first: number, count: number, data: Uint8Array): Promise<void> {
    const n = this.#n
    const unit = this.unit
    this.#refuseIfFailed('write')
    const aligned = (data.byteOffset & 3) === 0
    // Fresh, not kept (raid5-buffers.ts): kept buffers made a seq write faster and the reads right
    // after it slower by about as much (bench/README.md, Volumes), so they stay with the rebuild.
    const parity = Buffer.allocUnsafeSlow(count * unit)
    const chunks: Uint8Array[][] = Array.from({ length: n }, () => [])
    const units: Uint8Array[] = []
    for (let i = 0; i < count; i++) {
      const stripe = first + i
      units.length = 0
      for (let d = 0; d < n - 1; d++) {
        const at = (i * (n - 1) + d) * unit
        let src = data.subarray(at, at + unit)
        if (!aligned) {
          // A buffer of its own is 8-byte aligned: the XOR below then runs in 64-bit lanes.
          const copy = Buffer.allocUnsafeSlow(unit)
          copy.set(src)
          src = copy
        }
        chunks[dataMember(stripe, d, n)]?.push(src)
        units.push(src)
      }
      const p = parity.subarray(i * unit, (i + 1) * unit)
      xorOf(p, units)
      chunks[parityMember(stripe, n)]?.push(p)
    }
    const live = this.#m.map((_, member) => member).filter((member) => this.#m[member]?.state !== 'failed')
    const results = await Promise.allSettled(
      live.map((member) => {
        const dev = this.#dev(member)
        const mine = chunks[member] ?? []
        return dev.writev === undefined ? dev.write(first * unit, Buffer.concat(mine)) : dev.writev(first * unit, mine)
      }),
    )
    results.forEach((r, k) => {
      const member = live[k]
      if (r.status === 'rejected' && member !== undefined) this.#markFailed(member, errorMessage(r.reason))
    })
    this.#refuseIfFailed('write')
  }

  /**
   * The new parity over [lo, hi) (the span of the stripe the pieces touch), or null where the
   * parity member is out of service and nothing needs computing; 'retry' when a read failed and
   * marked its member, so the caller plans again with one member fewer.
   */
  async #planParity(stripe: number, pieces: readonly Piece[]): Promise<{ lo: number; parity: Uint8Array } | null | 'retry'> {
    const n = this.#n
    const p = parityMember(stripe, n)
    const full = pieces.length === n - 1 && pieces.every((x) => x.start === 0 && x.end === this.unit)
    if (full) {
      const parity = Buffer.allocUnsafeSlow(this.unit)
      xorOf(parity, pieces.map((x) => x.data))
      return { lo: 0, parity }
    }
    const missing = this.#m.findIndex((_, i) => !this.#readable(i, stripe))
    if (missing === p) return null
    const lo = Math.min(...pieces.map((x) => x.start))
    const hi = Math.max(...pieces.map((x) => x.end))
    const len = hi - lo
    const base = stripe * this.unit
    const touched = new Map(pieces.map((x) => [x.dataIndex, x]))
    const missingData = missing < 0 ? -1 : dataIndexOn(stripe, missing, n)
    const rmwBytes = len + pieces.reduce((sum, x) => sum + x.end - x.start, 0)
    let rcwBytes = 0
    for (let d = 0; d < n - 1; d++) {
      const x = touched.get(d)
      if (x === undefined || x.start > lo || x.end < hi) rcwBytes += len
    }
    try {
      if (missing < 0 && rcwBytes < rmwBytes) {
        // Reconstruct-write: parity of the new stripe from its data, old where untouched.
        const parity = Buffer.alloc(len)
        await Promise.all(
          Array.from({ length: n - 1 }, async (_, d) => {
            const x = touched.get(d)
            if (x !== undefined && x.start <= lo && x.end >= hi) {
              xorInto(parity, x.data.subarray(lo - x.start, hi - x.start))
              return
            }
            const old = await this.#readMember(dataMember(stripe, d, n), base + lo, len)
            if (x !== undefined) old.set(x.data, x.start - lo)
            xorInto(parity, old)
          }),
        )
        return { lo, parity }
      }
      // Read-modify-write: parity ^= old ^ new over each piece. A missing data member's old bytes
      // are what the old parity and the other old data imply.
      const parity = await this.#readMember(p, base + lo, len)
      let missingOld: Buffer | undefined
      if (missingData >= 0 && touched.has(missingData)) {
        missingOld = Buffer.from(parity)
        const others = await Promise.all(
          Array.from({ length: n - 1 }, (_, d) => d)
            .filter((d) => d !== missingData)
            .map((d) => this.#readMember(dataMember(stripe, d, n), base + lo, len)),
        )
        xorInto(missingOld, ...others)
      }
      await Promise.all(
        pieces.map(async (x) => {
          const at = x.start - lo
          const old =
            x.dataIndex === missingData && missingOld !== undefined
              ? missingOld.subarray(at, at + x.data.length)
              : await this.#readMember(dataMember(stripe, x.dataIndex, n), base + x.start, x.data.length)
          const span = parity.subarray(at, at + x.data.length)
          xorInto(span, old, x.data)
        }),
      )
      return { lo, parity }
    } catch (err) {
      if (err instanceof MemberReadError) return 'retry'
      throw err
    }
  }

  async #readPiece(stripe: number, member: number, memberOffset: number, target: Uint8Array): Promise<void> {
    if (this.#readable(member, stripe)) {
      try {
        await this.#dev(member).readInto(memberOffset, target)
        return
      } catch (err) {
        this.#markFailed(member, errorMessage(err))
      }
    }
    await this.#locks.with(stripe, () => this.#reconstruct(stripe, member, memberOffset, target))
  }

  /** target = the XOR of every other member over the same range: the lost member's bytes. */
  async #reconstruct(stripe: number, lost: number, memberOffset: number, target: Uint8Array): Promise<void> {
    const others = this.#m.map((_, i) => i).filter((i) => i !== lost)
    const gone = others.filter((i) => !this.#readable(i, stripe))
    if (gone.length > 0) {
      throw new VolumeError('VOLUME_FAILED', `member ${lost}'s bytes at ${memberOffset} cannot be rebuilt: member ${gone.join(', ')} is out of service too`)
    }
    // Read into kept buffers (raid5-buffers.ts): a rebuild reads a step of every other member each
    // turn, and fresh buffers cost their page faults. Given back only once every read has settled.
    const parts = others.map(() => this.#runBuffers.take(target.length))
    const reads = await Promise.allSettled(others.map((i, k) => this.#readMemberInto(i, memberOffset, parts[k] ?? Buffer.alloc(0))))
    try {
      const failed = reads.find((r) => r.status === 'rejected')
      if (failed !== undefined) {
        const err: unknown = failed.reason
        throw new VolumeError('VOLUME_FAILED', `member ${lost}'s bytes at ${memberOffset} cannot be rebuilt: ${errorMessage(err)}`, { cause: err })
      }
      xorOf(target, parts)
    } finally {
      this.#runBuffers.give(parts)
    }
  }

  /** Rebuilds `count` stripes from `first` of member `index` (the caller holds their locks). */
  async #rebuildStripes(index: number, first: number, count: number): Promise<void> {
    const m = this.#member(index)
    if (m.state !== 'rebuilding') {
      throw new VolumeError(this.#failed ? 'VOLUME_FAILED' : 'VOLUME_MEMBER', `rebuild of member ${index} stopped: ${m.reason ?? 'it left service'}`)
    }
    const units = this.#runBuffers.take(count * this.unit)
    try {
      // Readable at the last stripe means readable at every earlier one (rebuilt only grows).
      await this.#reconstruct(first + count - 1, index, first * this.unit, units)
      try {
        await m.dev.write(first * this.unit, units)
      } catch (err) {
        this.#markFailed(index, errorMessage(err))
        throw err
      }
    } finally {
      this.#runBuffers.give([units])
    }
    m.rebuilt = first + count
  }

  /**
   * Runs `fn` holding the locks of `count` stripes from `first`, taken in ascending order: every
   * other holder takes one stripe lock at a time, so the order alone rules out a deadlock.
   */
  #withStripes<T>(first: number, count: number, fn: () => Promise<T>): Promise<T> {
    if (count <= 0) return fn()
    return this.#locks.with(first, () => this.#withStripes(first + 1, count - 1, fn))
  }

  async #scrubStripe(stripe: number, repair: boolean): Promise<'match' | 'mismatch' | 'repaired'> {
    const n = this.#n
    const p = parityMember(stripe, n)
    const units = await Promise.all(this.#m.map((_, i) => this.#readMember(i, stripe * this.unit, this.unit)))
    const computed = Buffer.allocUnsafeSlow(this.unit)
    xorOf(computed, units.filter((_, i) => i !== p))
    if (computed.equals(units[p] ?? Buffer.alloc(0))) return 'match'
    this.#emit('scrub-mismatch', `stripe ${stripe}: parity on member ${p} disagrees with the data`, p, stripe * this.unit, this.unit)
    if (!repair) return 'mismatch'
    await this.#tracked(async (generation) => {
      const row = (n - 1) * this.unit
      await this.#intent?.mark(stripe * row, row, generation)
      await this.#writeMember(p, stripe * this.unit, computed)
    })
    return 'repaired'
  }

  /**
   * Rewrites the parity of `stripe` from its data. With the parity member out of service there is
   * nothing to rewrite; with a data member out, nothing to rewrite it from ('data-missing').
   */
  async #resyncStripe(stripe: number): Promise<'rewritten' | 'parity-missing' | 'data-missing'> {
    const n = this.#n
    const p = parityMember(stripe, n)
    if (!this.#readable(p, stripe)) return 'parity-missing'
    const data: Buffer[] = []
    for (let d = 0; d < n - 1; d++) {
      const member = dataMember(stripe, d, n)
      if (!this.#readable(member, stripe)) return 'data-missing'
      data.push(await this.#readMember(member, stripe * this.unit, this.unit))
    }
    const parity = Buffer.allocUnsafeSlow(this.unit)
    xorOf(parity, data)
    await this.#writeMember(p, stripe * this.unit, parity)
    return 'rewritten'
  }

  // ---- members ----

  #member(index: number): Member {
    const m = Number.isInteger(index) ? this.#m[index] : undefined
    if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `no member ${index} in a RAID-5 of ${this.#n}`)
    return m
  }

  #dev(index: number): BlockDevice {
    return this.#member(index).dev
  }

  /** Whether member `index` holds valid bytes for `stripe`. */
  #readable(index: number, stripe: number): boolean {
    const m = this.#m[index]
    return m !== undefined && (m.state === 'ok' || (m.state === 'rebuilding' && m.rebuilt > stripe))
  }

  async #readMember(index: number, offset: number, length: number): Promise<Buffer> {
    try {
      return await this.#dev(index).read(offset, length)
    } catch (err) {
      this.#markFailed(index, errorMessage(err))
      throw new MemberReadError(index, err)
    }
  }

  async #readMemberInto(index: number, offset: number, target: Uint8Array): Promise<void> {
    try {
      await this.#dev(index).readInto(offset, target)
    } catch (err) {
      this.#markFailed(index, errorMessage(err))
      throw new MemberReadError(index, err)
    }
  }

  async #writeMember(index: number, offset: number, data: Uint8Array): Promise<void> {
    try {
      await this.#dev(index).write(offset, data)
    } catch (err) {
      this.#markFailed(index, errorMessage(err))
      this.#refuseIfFailed('write')
    }
  }

  /** Runs `op` on every member in service; a member it fails is marked failed. */
  async #onLive(op: (dev: BlockDevice) => Promise<void>): Promise<void> {
    const live = this.#m.map((m, i) => ({ m, i })).filter(({ m }) => m.state !== 'failed')
    const results = await Promise.allSettled(live.map(({ m }) => op(m.dev)))
    results.forEach((r, k) => {
      const entry = live[k]
      if (r.status === 'rejected' && entry !== undefined) this.#markFailed(entry.i, errorMessage(r.reason))
    })
  }

  #markFailed(index: number, reason: string): void {
    const m = this.#m[index]
    if (m === undefined || m.state === 'failed') return
    const wasOk = m.state === 'ok'
    m.state = 'failed'
    m.reason = reason
    this.#emit('member-failed', `member ${index} failed: ${reason}`, index)
    // A member lost while another is rebuilding leaves the rebuild nothing to rebuild from.
    if (wasOk) for (const [i, other] of this.#m.entries()) if (other.state === 'rebuilding') this.#markFailed(i, `rebuild source member ${index} failed`)
    if (!this.#failed && this.#m.filter((x) => x.state === 'failed').length >= 2) {
      this.#failed = true
      this.#emit('volume-failed', `${this.#m.filter((x) => x.state === 'failed').length} members out of service: writes refused`)
    }
  }

  #refuseIfFailed(what: string): void {
    if (this.#failed) throw new VolumeError('VOLUME_FAILED', `${what} refused: two or more members of the RAID-5 are out of service`)
  }

  #tracked(fn: (generation: number) => Promise<void>): Promise<void> {
    return this.#generations.run(fn)
  }

  /** Sleeps `ms`, or until the volume closes (then throws its closed error, as pacedSteps does). */
  async #giveWay(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#closing.signal })
    } catch (err) {
      this.#closing.signal.throwIfAborted()
      throw err
    }
  }

  #emit(kind: VolumeEventKind, message: string, member?: number, offset?: number, length?: number): void {
    this.#onEvent?.({
      kind,
      layer: 'raid5',
      message,
      ...(member !== undefined ? { member } : {}),
      ...(offset !== undefined ? { offset } : {}),
      ...(length !== undefined ? { length } : {}),
    })
  }
}

/** The longest a rebuild step gives way to clients (a slow step must not stall the rebuild for seconds). */
const MAX_YIELD_MS = 200

/** A member read failed (the member is marked failed already): the stripe operation plans again. */
class MemberReadError extends Error {
  constructor(index: number, cause: unknown) {
    super(`member ${index} read failed: ${errorMessage(cause)}`, { cause })
    this.name = 'MemberReadError'
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Waits for every promise (none left running behind a rejection), then rethrows the first error. */
async function settleAll(all: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(all)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}
