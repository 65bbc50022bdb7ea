import { crc32 } from 'node:zlib'
import { checkRange } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { VolumeError } from './layer.ts'
import type { IntentLog } from './layer.ts'

/**
 * md's write-intent bitmap for our redundant layers: one bit per `regionSize` bytes of the volume,
 * set durably before any member is written in that region, cleared lazily once a flush has made
 * the region's writes durable everywhere.
 *
 * On disk, each copy (one per member, like md, so any single member's loss leaves one) holds two
 * slots written alternately, each a header and the bits:
 *
 *     0  magic 'TSNFSWIB'     8  u32 format (1)     12 u32 CRC-32 of the slot with this field 0
 *     16 u64 sequence         24 u64 region size    32 u64 volume size     40 u32 regions
 *     44 zero to 64           64 the bits, region r at byte r >> 3, bit r & 7; zero to the slot's end
 *
 * Why two slots: a write not yet flushed may be torn, and every copy can tear in one power cut;
 * before a slot is overwritten the other one is made durable, so each copy always keeps the
 * previous state whole. The newest valid slot of any copy wins at open. CRC-32 (node:zlib), not
 * CRC-32C: this folder may not import the engine's crc32c, and any CRC catches a torn slot.
 */

const MAGIC = Buffer.from('TSNFSWIB', 'latin1')
const FORMAT = 1
const HEADER = 64
const SLOT_ALIGN = 512
/** md's default chunk of the bitmap is far smaller; 64 MiB keeps a 16 TiB volume's bits at 32 KiB. */
export const DEFAULT_REGION = 64 * 1024 * 1024
/** Regions at most: caps the bits any copy is asked to hold (16 MiB of bits). */
const MAX_REGIONS = 128 * 1024 * 1024

/** A byte range of a device given over to one copy of the bitmap. */
export interface BitmapPlace {
  readonly dev: BlockDevice
  readonly offset: number
  readonly length: number
}

export interface IntentBitmapOptions {
  /** Bytes of the volume one bit covers (default 64 MiB). */
  regionSize?: number
  /**
   * Settles in a row that must find a region quiet (no write marked it since the one before)
   * before its bit clears (default 2; 1 clears at the first, as the bookkeeping tests want).
   */
  quietSettles?: number
}

/**
 * Why 2 by default: md keeps a bit set until its region has been idle for a whole bitmap daemon
 * period, because clearing a bit that the next write sets again costs that write a bitmap update
 * and a flush of every member before it may go. The engine above flushes at every journal commit,
 * so with clearing at the first settle its journal and the file it was writing lost their bits at
 * every commit and paid that flush again (11 flushing bitmap writes while the engine wrote a
 * 256 MiB file over 4 regions; 8 now, with the marks ahead). A region written between every two flushes now keeps its bit; one left alone
 * for two flushes clears. A bit kept longer only lengthens the resync after a crash.
 */
const DEFAULT_QUIET_SETTLES = 2

interface Geometry {
  readonly regionSize: number
  readonly volumeSize: number
  readonly regions: number
  readonly slotSize: number
}

/** Bytes one copy needs: two slots. */
export function bitmapCopyLength(volumeSize: number, options: IntentBitmapOptions = {}): number {
  return 2 * geometry(volumeSize, options.regionSize ?? DEFAULT_REGION).slotSize
}

export class IntentBitmap implements IntentLog {
  readonly regionSize: number
  readonly #geo: Geometry
  readonly #copies: { readonly place: BitmapPlace; alive: boolean }[]
  /** The bits as they should be on disk (what marks and settles asked for). */
  readonly #bits: Uint8Array
  /** Per region: the version at which its bit was last set, so a mark knows which write it needs. */
  readonly #setAt: Float64Array
  /** Per region: the largest write generation that marked it (0: none, or dirty at open). */
  readonly #lastGen: Float64Array
  /** Per region: settles in a row that found it quiet (see quietSettles). */
  readonly #quiet: Uint8Array
  readonly #quietSettles: number
  readonly #dirtyAtOpen: readonly { readonly offset: number; readonly length: number }[]
  #seq: number
  /** Bumped at every change of #bits; #durable is the newest version a flushed write carried. */
  #version = 0
  #durable = 0
  /** Whether the last slot written has been flushed since (the other slot may be overwritten then). */
  #lastFlushed = true
  #chain: Promise<void> = Promise.resolve()
  #closed = false

  private constructor(geo: Geometry, copies: readonly BitmapPlace[], seq: number, bits: Uint8Array, quietSettles: number) {
    this.#geo = geo
    this.regionSize = geo.regionSize
    this.#copies = copies.map((place) => ({ place, alive: true }))
    this.#seq = seq
    this.#bits = bits
    this.#setAt = new Float64Array(geo.regions)
    this.#lastGen = new Float64Array(geo.regions)
    this.#quiet = new Uint8Array(geo.regions)
    this.#quietSettles = quietSettles
    this.#dirtyAtOpen = dirtyRanges(bits, geo)
  }

  /** Writes a clean bitmap (sequence 1 in slot 1, 0 in slot 0) to every copy, durably. */
  static async format(copies: readonly BitmapPlace[], volumeSize: number, options: IntentBitmapOptions = {}): Promise<void> {
    const geo = geometry(volumeSize, options.regionSize ?? DEFAULT_REGION)
    checkPlaces(copies, geo)
    const bits = new Uint8Array(Math.ceil(geo.regions / 8))
    for (const c of copies) {
      await c.dev.write(c.offset, encodeSlot(geo, 0, bits))
      await c.dev.write(c.offset + geo.slotSize, encodeSlot(geo, 1, bits))
      await c.dev.flush()
    }
  }

  /**
   * Reads every copy and keeps the newest valid slot. Every length comes from the caller (the
   * volume's size and region size); the header only has to agree with it, so nothing read from
   * disk sizes an allocation.
   */
  static async open(copies: readonly BitmapPlace[], volumeSize: number, options: IntentBitmapOptions = {}): Promise<IntentBitmap> {
    const geo = geometry(volumeSize, options.regionSize ?? DEFAULT_REGION)
    checkPlaces(copies, geo)
    let best: { seq: number; bits: Uint8Array } | undefined
    const reasons: string[] = []
    for (const [i, c] of copies.entries()) {
      for (const slot of [0, 1]) {
        let raw: Buffer
        try {
          raw = await c.dev.read(c.offset + slot * geo.slotSize, geo.slotSize)
        } catch (err) {
          reasons.push(`copy ${i} slot ${slot}: ${(err as Error).message}`)
          continue
        }
        const found = decodeSlot(raw, geo)
        if (typeof found === 'string') reasons.push(`copy ${i} slot ${slot}: ${found}`)
        else if (best === undefined || found.seq > best.seq) best = found
      }
    }
    if (best === undefined) throw new VolumeError('VOLUME_BITMAP', `no valid write-intent bitmap copy (${reasons.join('; ')})`)
    const quiet = options.quietSettles ?? DEFAULT_QUIET_SETTLES
    if (!Number.isInteger(quiet) || quiet < 1 || quiet > 255) throw new VolumeError('VOLUME_LAYOUT', `quietSettles ${quiet}: must be 1 … 255`)
    return new IntentBitmap(geo, copies, best.seq, Uint8Array.from(best.bits), quiet)
  }

  dirtyAtOpen(): readonly { readonly offset: number; readonly length: number }[] {
    return this.#dirtyAtOpen
  }

  /** Regions dirty now (in memory), merged, on the volume's scale: for status and tests. */
  dirtyNow(): readonly { readonly offset: number; readonly length: number }[] {
    return dirtyRanges(this.#bits, this.#geo)
  }

  /** `generation` defaults to 0, for callers that settle everything (tests of the bitmap alone). */
  async mark(offset: number, length: number, generation = 0): Promise<void> {
    if (this.#closed) throw new VolumeError('VOLUME_BITMAP', 'mark on a closed bitmap')
    checkRange(this.#geo.volumeSize, offset, length, 'intent mark')
    if (length === 0) return
    const first = Math.floor(offset / this.regionSize)
    const last = Math.floor((offset + length - 1) / this.regionSize)
    let changed = false
    for (let r = first; r <= last; r++) {
      // Before any await: a settle that runs next already sees this write's generation.
      if ((this.#lastGen[r] ?? 0) < generation) this.#lastGen[r] = generation
      this.#quiet[r] = 0
      if (!getBit(this.#bits, r)) {
        if (!changed) this.#version++
        changed = true
        setBit(this.#bits, r, true)
        this.#setAt[r] = this.#version
      }
    }
    let needed = 0
    for (let r = first; r <= last; r++) needed = Math.max(needed, this.#setAt[r] ?? 0)
    this.#markAhead(offset + length, last)
    if (this.#durable >= needed) return
    // Marks that land while a write is queued share it: the job re-checks before writing.
    await this.#enqueue(async () => {
      if (this.#durable < needed) await this.#writeOut(true)
    })
  }

  /**
   * A stream (a write that ends in the last quarter of its region, the region before it dirty
   * too) with the next region clean sets the next region's bit now, in the background: the
   * stream then finds it durable when it gets there. Otherwise every 64 MiB of a sequential write
   * stopped until a flush of every member (of all the stream had written so far) was done. Costs
   * a region's resync if the crash comes first; writes that do not stream never pay it.
   */
  #markAhead(end: number, last: number): void {
    const next = last + 1
    if (next >= this.#geo.regions || getBit(this.#bits, next) || last === 0 || !getBit(this.#bits, last - 1)) return
    if (end < next * this.regionSize - this.regionSize / 4) return
    this.#version++
    setBit(this.#bits, next, true)
    this.#setAt[next] = this.#version
    this.#quiet[next] = 0
    const needed = this.#version
    // Nobody waits for it; a failure shows at the next mark that must write (every copy gone).
    this.#enqueue(async () => {
      if (this.#durable < needed) await this.#writeOut(true)
    }).catch(() => undefined)
  }

  /**
   * Clears every region whose largest mark generation is below `before` (default: every region
   * marked so far) at this settle and the `quietSettles` − 1 before it (see DEFAULT_QUIET_SETTLES)
   * and whose bit is durable. The layer passes the horizon it read before a flush of all members began, and
   * calls this once that flush is done (layer.ts, IntentLog). The clearing is written but not
   * flushed: a dirty bit that survives a crash costs a resync of one region, never data.
   */
  async settle(before = Infinity): Promise<void> {
    await this.#settle(before, this.#quietSettles)
  }

  /** A clean close: regions below `before` clear at once (IntentLog.settleFinal). */
  async settleFinal(before = Infinity): Promise<void> {
    await this.#settle(before, 1)
  }

  async #settle(before: number, quietSettles: number): Promise<void> {
    if (this.#closed) throw new VolumeError('VOLUME_BITMAP', 'settle on a closed bitmap')
    // A region whose mark is still waiting for its write keeps its bit: that write is not durable.
    let changed = false
    for (let r = 0; r < this.#geo.regions; r++) {
      if (!getBit(this.#bits, r)) continue
      if ((this.#lastGen[r] ?? 0) >= before || (this.#setAt[r] ?? 0) > this.#durable) {
        this.#quiet[r] = 0
        continue
      }
      const quiet = (this.#quiet[r] ?? 0) + 1
      this.#quiet[r] = quiet
      if (quiet < quietSettles) continue
      setBit(this.#bits, r, false)
      changed = true
    }
    if (!changed) return
    this.#version++
    await this.#enqueue(() => this.#writeOut(false))
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#chain
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(job)
    this.#chain = run.catch(() => undefined)
    return run
  }

  /** Writes the current bits as the next sequence to every live copy; one write in flight at a time. */
  async #writeOut(flush: boolean): Promise<void> {
    const version = this.#version
    if (!this.#lastFlushed) await this.#each((c) => c.dev.flush())
    this.#seq++
    const slot = this.#seq % 2
    const record = encodeSlot(this.#geo, this.#seq, this.#bits)
    await this.#each((c) => c.dev.write(c.offset + slot * this.#geo.slotSize, record))
    if (flush) {
      await this.#each((c) => c.dev.flush())
      this.#durable = Math.max(this.#durable, version)
    }
    this.#lastFlushed = flush
  }

  /** Runs `op` on every live copy; a copy whose device fails is dropped, and losing them all fails. */
  async #each(op: (c: BitmapPlace) => Promise<void>): Promise<void> {
    const live = this.#copies.filter((c) => c.alive)
    const results = await Promise.allSettled(live.map((c) => op(c.place)))
    const errors: string[] = []
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const copy = live[i]
        if (copy !== undefined) copy.alive = false
        errors.push(r.reason instanceof Error ? r.reason.message : String(r.reason))
      }
    })
    if (!this.#copies.some((c) => c.alive)) throw new VolumeError('VOLUME_FAILED', `every write-intent bitmap copy failed (${errors.join('; ')})`)
  }
}

function geometry(volumeSize: number, regionSize: number): Geometry {
  if (!Number.isSafeInteger(regionSize) || regionSize <= 0) throw new VolumeError('VOLUME_LAYOUT', `bitmap region size ${regionSize} is not a positive integer`)
  if (!Number.isSafeInteger(volumeSize) || volumeSize <= 0) throw new VolumeError('VOLUME_LAYOUT', `volume size ${volumeSize} is not a positive integer`)
  const regions = Math.ceil(volumeSize / regionSize)
  if (regions > MAX_REGIONS) throw new VolumeError('VOLUME_LAYOUT', `${regions} bitmap regions exceed ${MAX_REGIONS}: choose a larger region size`)
  const slotSize = Math.ceil((HEADER + Math.ceil(regions / 8)) / SLOT_ALIGN) * SLOT_ALIGN
  return { regionSize, volumeSize, regions, slotSize }
}

function checkPlaces(copies: readonly BitmapPlace[], geo: Geometry): void {
  if (copies.length === 0) throw new VolumeError('VOLUME_LAYOUT', 'a write-intent bitmap needs at least one copy')
  for (const [i, c] of copies.entries()) {
    if (c.length < 2 * geo.slotSize) throw new VolumeError('VOLUME_LAYOUT', `bitmap copy ${i} has ${c.length} bytes, needs ${2 * geo.slotSize}`)
    if (!Number.isSafeInteger(c.offset) || c.offset < 0 || c.offset + c.length > c.dev.size) {
      throw new VolumeError('VOLUME_LAYOUT', `bitmap copy ${i} (${c.length} bytes at ${c.offset}) lies outside its device of ${c.dev.size}`)
    }
  }
}

function encodeSlot(geo: Geometry, seq: number, bits: Uint8Array): Buffer {
  const slot = Buffer.alloc(geo.slotSize)
  MAGIC.copy(slot, 0)
  slot.writeUInt32LE(FORMAT, 8)
  slot.writeBigUInt64LE(BigInt(seq), 16)
  slot.writeBigUInt64LE(BigInt(geo.regionSize), 24)
  slot.writeBigUInt64LE(BigInt(geo.volumeSize), 32)
  slot.writeUInt32LE(geo.regions, 40)
  slot.set(bits.subarray(0, Math.ceil(geo.regions / 8)), HEADER)
  slot.writeUInt32LE(crc32(slot), 12)
  return slot
}

/** The slot's sequence and bits, or why it is not a valid slot of this volume's bitmap. */
function decodeSlot(raw: Buffer, geo: Geometry): { seq: number; bits: Uint8Array } | string {
  if (!raw.subarray(0, 8).equals(MAGIC)) return 'no bitmap magic'
  const format = raw.readUInt32LE(8)
  if (format !== FORMAT) return `format ${format}, not ${FORMAT}`
  const stored = raw.readUInt32LE(12)
  const zeroed = Buffer.from(raw)
  zeroed.writeUInt32LE(0, 12)
  if (crc32(zeroed) !== stored) return 'checksum mismatch (torn or damaged)'
  const seq = raw.readBigUInt64LE(16)
  const regionSize = raw.readBigUInt64LE(24)
  const volumeSize = raw.readBigUInt64LE(32)
  const regions = raw.readUInt32LE(40)
  if (regionSize !== BigInt(geo.regionSize) || volumeSize !== BigInt(geo.volumeSize) || regions !== geo.regions) {
    return `describes a volume of ${volumeSize} bytes in regions of ${regionSize}, not ${geo.volumeSize} in ${geo.regionSize}`
  }
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) return `sequence ${seq} out of range`
  return { seq: Number(seq), bits: raw.subarray(HEADER, HEADER + Math.ceil(geo.regions / 8)) }
}

function getBit(bits: Uint8Array, r: number): boolean {
  return ((bits[r >>> 3] ?? 0) & (1 << (r & 7))) !== 0
}

function setBit(bits: Uint8Array, r: number, on: boolean): void {
  const i = r >>> 3
  const b = bits[i] ?? 0
  bits[i] = on ? b | (1 << (r & 7)) : b & ~(1 << (r & 7))
}

function dirtyRanges(bits: Uint8Array, geo: Geometry): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = []
  for (let r = 0; r < geo.regions; r++) {
    if (!getBit(bits, r)) continue
    const offset = r * geo.regionSize
    const end = Math.min(offset + geo.regionSize, geo.volumeSize)
    const prev = out[out.length - 1]
    if (prev !== undefined && prev.offset + prev.length === offset) prev.length = end - prev.offset
    else out.push({ offset, length: end - offset })
  }
  return out
}
