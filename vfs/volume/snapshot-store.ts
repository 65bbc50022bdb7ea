import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { VolumeError } from './layer.ts'
import {
  checkName, decodeHeader, decodeMapEntry, decodeTableEntry, DEFAULT_CHUNK, encodeHeader, encodeMapEntry, encodeTableEntry,
  layoutFor, MAP_OFFSET, MAP_SLOT, MAX_SNAPSHOTS, TABLE_OFFSET, TABLE_SLOT,
} from './snapshot-format.ts'
import type { SnapshotState, StoreLayout, TableEntry } from './snapshot-format.ts'

/** One copied origin chunk in the store. `mask` changes as snapshots sharing it go away. */
export interface Exception {
  readonly storeChunk: number
  readonly originChunk: number
  mask: bigint
}

export interface StoreUsage {
  readonly chunks: number
  readonly used: number
}

/** Bytes of the exception map read or written per I/O at format and open. */
const MAP_IO = 1024 * 1024

const bit = (id: number): bigint => 1n << BigInt(id)

/**
 * An exception store: the snapshot table and the exception map in memory, kept durable on its own
 * BlockDevice. The origin layer (snapshot.ts) decides when to copy; this class owns where copies
 * go, what the map says, and the ordering that makes each change durable. Writes to metadata
 * slots go one at a time (#serial), so two updates of one slot are never in flight together.
 */
export class SnapshotStore {
  readonly device: BlockDevice
  readonly layout: StoreLayout
  readonly #table: (TableEntry | undefined)[]
  readonly #exceptions = new Map<number, Exception>()
  /** Committed exceptions (durable, mask non-zero) by origin chunk: what reads and copy decisions consult. */
  readonly #byOrigin = new Map<number, Exception[]>()
  /** Store chunks below #highWater whose map slot is durably free. */
  readonly #free: number[] = []
  /** Every chunk from here on has never held a committed exception since open. */
  #highWater: number
  #seq: number
  #serialTail: Promise<unknown> = Promise.resolve()

  private constructor(device: BlockDevice, layout: StoreLayout, table: (TableEntry | undefined)[], map: Map<number, Exception>) {
    this.device = device
    this.layout = layout
    this.#table = table
    this.#seq = Math.max(0, ...table.map((e) => (e === undefined ? 0 : e.seq + 1)))
    let high = 0
    for (const exc of map.values()) {
      this.#exceptions.set(exc.storeChunk, exc)
      this.#index(exc)
      high = Math.max(high, exc.storeChunk + 1)
    }
    this.#highWater = high
    for (let c = high - 1; c >= 0; c--) if (!map.has(c)) this.#free.push(c)
  }

  /** Writes an empty store (header, empty table, empty map) and opens it. */
  static async format(device: BlockDevice, options: { chunkSize?: number } = {}): Promise<SnapshotStore> {
    const layout = layoutFor(device.size, options.chunkSize ?? DEFAULT_CHUNK, device.sectorSize)
    await device.write(TABLE_OFFSET, Buffer.alloc(MAX_SNAPSHOTS * TABLE_SLOT))
    const mapBytes = layout.chunkCount * MAP_SLOT
    for (let done = 0; done < mapBytes; done += MAP_IO) await device.write(MAP_OFFSET + done, Buffer.alloc(Math.min(MAP_IO, mapBytes - done)))
    // The header last, after a flush: a store whose format was cut short has no header and is not opened.
    await device.flush()
    await device.write(0, encodeHeader(layout))
    await device.flush()
    return new SnapshotStore(device, layout, new Array<TableEntry | undefined>(MAX_SNAPSHOTS).fill(undefined), new Map())
  }

  static async open(device: BlockDevice): Promise<SnapshotStore> {
    if (device.size < MAP_OFFSET) throw new VolumeError('VOLUME_NO_SUPERBLOCK', `a ${device.size}-byte device holds no snapshot store`)
    const layout = decodeHeader(await device.read(0, 512), device.size, device.sectorSize)
    const rawTable = await device.read(TABLE_OFFSET, MAX_SNAPSHOTS * TABLE_SLOT)
    const table: (TableEntry | undefined)[] = []
    const names = new Set<string>()
    for (let id = 0; id < MAX_SNAPSHOTS; id++) {
      const e = decodeTableEntry(rawTable.subarray(id * TABLE_SLOT, (id + 1) * TABLE_SLOT), id)
      if (e !== undefined && names.has(e.name)) throw new VolumeError('VOLUME_SNAPSHOT', `snapshot table slot ${id} repeats the name ${e.name}`)
      if (e !== undefined) names.add(e.name)
      table.push(e)
    }
    const known = table.reduce((m, e) => (e === undefined ? m : m | bit(e.id)), 0n)
    const map = new Map<number, Exception>()
    const seen = new Map<number, bigint>()
    const mapBytes = layout.chunkCount * MAP_SLOT
    for (let done = 0; done < mapBytes; done += MAP_IO) {
      const raw = await device.read(MAP_OFFSET + done, Math.min(MAP_IO, mapBytes - done))
      for (let at = 0; at < raw.length; at += MAP_SLOT) {
        const slot = (done + at) / MAP_SLOT
        const e = decodeMapEntry(raw.subarray(at, at + MAP_SLOT), slot)
        if (e.mask === 0n) continue
        if ((e.mask & ~known) !== 0n) throw new VolumeError('VOLUME_SNAPSHOT', `exception map slot ${slot} names a snapshot id the table does not have`)
        const before = seen.get(e.originChunk) ?? 0n
        if ((before & e.mask) !== 0n) throw new VolumeError('VOLUME_SNAPSHOT', `exception map slot ${slot} gives a snapshot a second copy of origin chunk ${e.originChunk}`)
        seen.set(e.originChunk, before | e.mask)
        map.set(slot, { storeChunk: slot, originChunk: e.originChunk, mask: e.mask })
      }
    }
    return new SnapshotStore(device, layout, table, map)
  }

  get chunkSize(): number {
    return this.layout.chunkSize
  }

  usage(): StoreUsage {
    const free = this.#free.length + (this.layout.chunkCount - this.#highWater)
    return { chunks: this.layout.chunkCount, used: this.layout.chunkCount - free }
  }

  entries(): TableEntry[] {
    return this.#table.filter((e): e is TableEntry => e !== undefined)
  }

  entry(name: string): TableEntry | undefined {
    return this.#table.find((e) => e?.name === name)
  }

  entryById(id: number): TableEntry | undefined {
    return this.#table[id]
  }

  /** Bits of the snapshots whose content must be kept. */
  liveMask(): bigint {
    return this.#table.reduce((m, e) => (e?.state === 'live' ? m | bit(e.id) : m), 0n)
  }

  /** Bits of every committed copy of `originChunk`. */
  covered(originChunk: number): bigint {
    return (this.#byOrigin.get(originChunk) ?? []).reduce((m, e) => m | e.mask, 0n)
  }

  /** The committed copy snapshot `id` reads `originChunk` from, if any. */
  find(originChunk: number, id: number): Exception | undefined {
    return this.#byOrigin.get(originChunk)?.find((e) => (e.mask & bit(id)) !== 0n)
  }

  /** The id of the live snapshot created first, if any. */
  oldestLive(): TableEntry | undefined {
    return this.entries().filter((e) => e.state === 'live').sort((a, b) => a.seq - b.seq)[0]
  }

  /** A new live entry, durable when this resolves. */
  async createEntry(name: string, created: number): Promise<TableEntry> {
    checkName(name)
    if (this.entry(name) !== undefined) throw new VolumeError('VOLUME_SNAPSHOT', `snapshot ${name} exists already`)
    const id = this.#table.indexOf(undefined)
    if (id < 0) throw new VolumeError('VOLUME_SNAPSHOT', `no room for snapshot ${name}: the store holds ${MAX_SNAPSHOTS}`)
    const e: TableEntry = { id, name, created, seq: this.#seq++, state: 'live' }
    this.#table[id] = e
    try {
      await this.#writeEntry(id)
      await this.device.flush()
    } catch (err) {
      if (this.#table[id] === e) this.#table[id] = undefined
      throw err
    }
    return e
  }

  /** Changes an entry's state, in memory at once (so no new copy includes it), durably when this resolves. */
  async setState(id: number, state: SnapshotState): Promise<void> {
    const e = this.#table[id]
    if (e === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `no snapshot with id ${id}`)
    this.#table[id] = { ...e, state }
    await this.#writeEntry(id)
    await this.device.flush()
  }

  /** Frees a table slot. Only after `dropCopies(id)` has resolved: no map slot may name a free id. */
  async freeEntry(id: number): Promise<void> {
    this.#table[id] = undefined
    await this.#writeEntry(id)
    await this.device.flush()
  }

  /** Whether some map slot still names snapshot `id`. */
  holdsCopies(id: number): boolean {
    for (const exc of this.#exceptions.values()) if ((exc.mask & bit(id)) !== 0n) return true
    return false
  }

  /** Clears snapshot `id`'s bit from every copy, durably, and frees the chunks no snapshot shares any more. */
  async dropCopies(id: number): Promise<number> {
    const freed: number[] = []
    for (const exc of [...this.#exceptions.values()]) {
      if ((exc.mask & bit(id)) === 0n) continue
      exc.mask &= ~bit(id)
      if (exc.mask === 0n) {
        this.#unindex(exc)
        this.#exceptions.delete(exc.storeChunk)
        freed.push(exc.storeChunk)
      }
      await this.#writeMap(exc)
    }
    await this.device.flush()
    // Only now, with the free slots durable, may a new copy land in these chunks.
    for (const c of freed) this.#free.push(c)
    return freed.length
  }

  /** A chunk for a new copy, or undefined when the store is full. */
  allocChunk(): number | undefined {
    const c = this.#free.pop()
    if (c !== undefined) return c
    if (this.#highWater < this.layout.chunkCount) return this.#highWater++
    return undefined
  }

  /** Returns a chunk whose copy was never committed (its map slot on disk is still free). */
  releaseChunk(storeChunk: number): void {
    this.#free.push(storeChunk)
  }

  chunkOffset(storeChunk: number): number {
    return this.layout.dataOffset + storeChunk * this.layout.chunkSize
  }

  /**
   * Records that `storeChunk`, whose data is durable already, holds `originChunk` for the
   * snapshots of `mask` still live. Durable and visible to reads when this resolves; undefined
   * (and the chunk released) when none of them is live any more.
   */
  async commitException(storeChunk: number, originChunk: number, mask: bigint): Promise<Exception | undefined> {
    const exc: Exception = { storeChunk, originChunk, mask: mask & this.liveMask() }
    if (exc.mask === 0n) {
      this.releaseChunk(storeChunk)
      return undefined
    }
    this.#exceptions.set(storeChunk, exc)
    await this.#writeMap(exc)
    await this.device.flush()
    // A drop may have cleared the last bit meanwhile; then it owns freeing the chunk.
    if (exc.mask === 0n) return undefined
    this.#index(exc)
    return exc
  }

  #index(exc: Exception): void {
    const list = this.#byOrigin.get(exc.originChunk)
    if (list === undefined) this.#byOrigin.set(exc.originChunk, [exc])
    else list.push(exc)
  }

  #unindex(exc: Exception): void {
    const list = this.#byOrigin.get(exc.originChunk)
    if (list === undefined) return
    const rest = list.filter((e) => e !== exc)
    if (rest.length === 0) this.#byOrigin.delete(exc.originChunk)
    else this.#byOrigin.set(exc.originChunk, rest)
  }

  /** Every origin chunk some copy holds (for the origin layer's check against its size). */
  originChunks(): number[] {
    return [...this.#byOrigin.keys()]
  }

  #writeEntry(id: number): Promise<void> {
    return this.#serial(() => {
      const e = this.#table[id]
      return this.device.write(TABLE_OFFSET + id * TABLE_SLOT, e === undefined ? Buffer.alloc(TABLE_SLOT) : encodeTableEntry(e))
    })
  }

  #writeMap(exc: Exception): Promise<void> {
    // The slot gets the mask as it is when the write is issued, so the last write carries the last value.
    return this.#serial(() => this.device.write(MAP_OFFSET + exc.storeChunk * MAP_SLOT, encodeMapEntry(exc)))
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#serialTail.then(fn, fn)
    this.#serialTail = run.catch(() => undefined)
    return run
  }
}
