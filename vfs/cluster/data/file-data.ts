/*
 * FileData for the cluster backend (types.ts): staging, flushing, reading
 * and truncating a file's chunks. One per server; `sid` is the server's
 * session (pending slices carry it so another server can reclaim them if
 * this one dies).
 */
import { VfsError } from '../../errors.ts'
import type { Stability, Timespec, VfsCache } from '../../types.ts'
import { dataCaches } from '../caches.ts'
import { IdBatch } from '../ids.ts'
import type { ObjectStore } from '../object-store.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import { BlockCache, isMissing } from './block-cache.ts'
import { blocksOf, type BlockReader } from './chunk-read.ts'
import { COMPACT_AT, compactChunk, type CompactResult } from './compaction.ts'
import { settleLater, Unsettled, uploadAndAttach, type FlushDeps, type Flushed } from './flush.ts'
import { layoutOf, MAX_CHUNK_INDEX, type DataLayout } from './layout.ts'
import { ReadAhead } from './read-ahead.ts'
import { mergeSlices } from './read-merge.ts'
import { reapZeroRefs, releaseChunks } from './refs.ts'
import { SliceCache } from './slice-cache.ts'
import { chunkLists, readStored, type StoredRead } from './stored-read.ts'
import { storeError } from './store-error.ts'
import { Staging, type StagedFile } from './staging.ts'
import { truncateChunks } from './truncate.ts'
import { parallel } from './upload.ts'
import type { FileData, StagedState } from './types.ts'

export interface FileDataOptions {
  db: SqlDb
  store: ObjectStore
  /** This server's session id (tsnfs_session.sid). */
  sid: bigint
  /** After this server committed a change to the inodes' data, size or mtime; `vers`: the versions their rows reached, where known. */
  onChanged?: (inodes: bigint[], vers: ReadonlyMap<bigint, bigint>) => void
  /**
   * Default true: changes are announced (pg_notify) and invalidate() is called for other
   * servers' changes, so slice lists are cached. False (cache mode 'per-request',
   * meta/cache-mode.ts): nothing is announced and no slice list is kept.
   */
  notify?: boolean
  log?: (msg: string) => void
  /** Block cache budget (default 256 MiB). */
  cacheBytes?: number
  /** The slice lists' bound (default 32 MiB; the export's metacache= sets it, cluster/caches.ts). */
  sliceCacheBytes?: number
  /** Staged UNSTABLE bytes above which the least recently written inodes are flushed (default 256 MiB). */
  stageBytes?: number
  /** Staged data untouched this long is flushed (default 5 s). */
  idleFlushMs?: number
  /** Tests only: smaller chunks and blocks (every server of a file system must agree). */
  chunkSize?: number
  blockSize?: number
  /** Block puts and gets in flight per operation (default 8). */
  concurrency?: number
  /** Compact a chunk in the background once it has more records than this (default 16; 0: never). */
  compactAt?: number
  /**
   * Read-ahead for sequential readers: the largest window prefetched into the
   * block cache, bytes (default 8 blocks; 0: none). Capped at a quarter of
   * the cache so prefetched blocks are not evicted before they are read; it
   * also bounds the bytes of prefetches in flight (read-ahead.ts).
   */
  readAheadBytes?: number
}

/** A read returns at most this much (a short read; NFS clients ask again). */
const MAX_READ = 64 * 1024 * 1024
/** Truncate and release run in the caller's transaction: cache nothing of that inode until it has surely committed. */
const SETTLE_MS = 2000

export function createFileData(opts: FileDataOptions): ClusterFileData {
  return new ClusterFileData(opts)
}

export class ClusterFileData implements FileData {
  readonly layout: DataLayout
  readonly blocks: BlockCache
  private readonly o: FileDataOptions
  private readonly staging = new Staging()
  private readonly inflight = new Map<bigint, StagedFile[]>()
  /** A flush per inode whose attach's outcome is unknown (flush.ts Unsettled); its bytes stay in inflight, read, until settled. */
  private readonly doubts = new Map<bigint, { f: StagedFile; u: Unsettled }>()
  /** Settlings of removed files' doubts still running (dropDoubt): a reap waits for them. */
  private readonly dropSettles = new Set<Promise<boolean>>()
  private readonly locks = new Map<bigint, Promise<unknown>>()
  private readonly slices: SliceCache
  private readonly sliceIds: IdBatch
  private readonly background = new Set<Promise<unknown>>()
  private readonly compacting = new Set<string>()
  private readonly timer: NodeJS.Timeout
  private readonly maxOffset: number
  private readonly readAhead: ReadAhead
  private readonly readAheadLimit: number
  private readonly stageLimit: number
  /** Bytes of read-ahead fetches in flight (at most readAheadLimit). */
  private prefetching = 0
  /** Bytes attached since COUNTER.usedBytes was last updated (see attach.ts). */
  private usedDelta = 0
  private usageTail: Promise<void> = Promise.resolve()
  private reapQueued = false
  private closed = false

  constructor(o: FileDataOptions) {
    this.o = o
    this.slices = new SliceCache(o.notify !== false, o.sliceCacheBytes)
    this.layout = layoutOf(o)
    const cacheBytes = o.cacheBytes ?? 256 * 1024 * 1024
    this.stageLimit = o.stageBytes ?? 256 * 1024 * 1024
    this.blocks = new BlockCache(o.store, cacheBytes)
    this.readAheadLimit = Math.min(o.readAheadBytes ?? 8 * this.layout.blockSize, Math.floor(cacheBytes / 4))
    this.readAhead = new ReadAhead({ maxWindow: this.readAheadLimit, minWindow: this.layout.blockSize })
    this.sliceIds = new IdBatch(o.db, COUNTER.nextSlice, 1000)
    this.maxOffset = Math.min(Number.MAX_SAFE_INTEGER, (MAX_CHUNK_INDEX + 1) * this.layout.chunkSize)
    const idle = o.idleFlushMs ?? 5000
    this.timer = setInterval(() => {
      this.flushIdle(Date.now() - idle)
      if (this.usedDelta !== 0) this.track(this.flushUsage())
    }, Math.max(50, Math.min(1000, idle / 2)))
    this.timer.unref()
  }

  staged(inode: bigint): StagedState | undefined {
    const files = [...(this.inflight.get(inode) ?? [])]
    const s = this.staging.files.get(inode)
    if (s !== undefined) files.push(s)
    const last = files[files.length - 1]
    if (last === undefined) return undefined
    return { size: BigInt(Math.max(...files.map((f) => f.end))), mtime: last.mtime }
  }

  async write(inode: bigint, offset: bigint, data: Buffer, stable: Stability, now: Timespec): Promise<void> {
    this.assertOpen()
    if (offset < 0n || offset + BigInt(data.length) > BigInt(this.maxOffset)) {
      throw new VfsError('EFBIG', `write at ${offset} of ${data.length} bytes is past the largest file (${this.maxOffset})`)
    }
    // The caller's buffer may be reused for the next request: keep a copy.
    this.staging.put(inode, Number(offset), Buffer.from(data), now, Date.now())
    if (stable !== 'unstable') {
      await this.flush(inode)
      return
    }
    const limit = this.stageLimit
    // Over the budget the writer waits for the oldest files to reach the store: memory stays bounded.
    while (this.staging.total > limit) {
      const oldest = this.staging.oldest()
      if (oldest === undefined) break
      await this.flush(oldest)
    }
  }

  flush(inode: bigint): Promise<void> {
    return this.serialized(inode, () => this.flushNow(inode))
  }

  async flushAll(): Promise<void> {
    const inodes = new Set([...this.staging.files.keys(), ...this.doubts.keys()])
    const results = await Promise.allSettled([...inodes].map((i) => this.flush(i)))
    const failed = results.find((r) => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }

  discard(inode: bigint): void {
    this.staging.take(inode)
    this.dropDoubt(inode)
    this.slices.drop(inode)
    this.readAhead.forget(inode)
  }

  async truncate(tx: SqlTx, inode: bigint, oldSize: bigint, newSize: bigint): Promise<void> {
    const zero = await truncateChunks(tx, inode, oldSize, newSize, this.layout)
    this.slices.dropSettling(inode, Date.now() + SETTLE_MS)
    if (zero.length > 0) this.queueReap()
  }

  async release(tx: SqlTx, inode: bigint): Promise<void> {
    const zero = await releaseChunks(tx, inode)
    this.staging.take(inode)
    this.dropDoubt(inode)
    this.slices.dropSettling(inode, Date.now() + SETTLE_MS)
    if (zero.length > 0) this.queueReap()
  }

  invalidate(inode: bigint): void {
    this.slices.drop(inode)
  }

  invalidateAll(): void {
    this.slices.dropAll()
  }

  caches(): VfsCache[] {
    return dataCaches({ blocks: this.blocks, slices: this.slices, staging: this.staging, inflight: this.inflight, stageLimit: this.stageLimit })
  }

  async read(inode: bigint, offset: bigint, count: number, size: bigint): Promise<Buffer> {
    if (offset >= size || count <= 0) return Buffer.alloc(0)
    const end = offset + BigInt(Math.min(count, MAX_READ))
    const n = Number((end < size ? end : size) - offset)
    const off = Number(offset)
    // Started before this read waits: the next blocks come in while this one is served.
    const ahead = this.readAhead.access(inode, off, n, Number(size))
    if (ahead !== undefined) this.prefetch(inode, ahead.from, ahead.to)
    for (let attempt = 0; ; attempt++) {
      const mark = this.slices.mark(inode)
      let out: Buffer
      try {
        out = await readStored(this.readDeps(), inode, off, n, mark)
      } catch (err) {
        // A slice list cached before a compaction or truncation names blocks since deleted: read the list again.
        if (isMissing(err) && attempt === 0) {
          this.slices.drop(inode)
          continue
        }
        throw storeError(err, `read of inode ${inode}`)
      }
      // A flush committed while we read: the bytes may be neither in what we fetched nor still staged.
      if (this.slices.mark(inode) !== mark && attempt < 3) continue
      for (const f of this.inflight.get(inode) ?? []) f.overlay(out, off)
      this.staging.files.get(inode)?.overlay(out, off)
      return out
    }
  }

  /** Compact one chunk now (tests; the background task calls the same). */
  async compact(inode: bigint, idx: number): Promise<CompactResult> {
    const { ver, ...result } = await compactChunk({
      db: this.o.db,
      store: this.o.store,
      sid: this.o.sid,
      announce: this.o.notify !== false,
      layout: this.layout,
      sliceIds: this.sliceIds,
      read: this.blockReader(),
      concurrency: this.o.concurrency ?? 8,
    }, inode, idx)
    if (result.outcome === 'compacted') {
      this.slices.drop(inode)
      this.o.onChanged?.([inode], ver === undefined ? new Map() : new Map([[inode, ver]]))
    }
    return result
  }

  /** Wait for background work (compaction, block deletion) to finish. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background])
  }

  async close(): Promise<void> {
    if (this.closed) return
    clearInterval(this.timer)
    try {
      await this.flushAll()
    } finally {
      this.closed = true
      await this.idle()
      await this.flushUsage()
    }
  }

  /**
   * Apply the bytes attached since the last update to COUNTER.usedBytes (one
   * statement). Calls queue behind one another, so when it resolves every
   * delta before the call is in the database.
   */
  flushUsage(): Promise<void> {
    const run = this.usageTail.then(() => this.applyUsage())
    this.usageTail = run.catch(() => undefined)
    return run
  }

  private async applyUsage(): Promise<void> {
    const delta = this.usedDelta
    if (delta === 0) return
    this.usedDelta = 0
    try {
      await this.o.db.query('UPDATE tsnfs_counter SET value = value + $2 WHERE name = $1', [COUNTER.usedBytes, delta])
    } catch (err) {
      this.usedDelta += delta
      throw err
    }
  }

  private readDeps(): StoredRead {
    return { db: this.o.db, slices: this.slices, layout: this.layout, read: this.blockReader(), concurrency: this.o.concurrency ?? 8 }
  }

  /**
   * Warm the block cache with the blocks holding [from, to) of the inode
   * (read-ahead). Best effort and bounded: prefetches past readAheadLimit
   * bytes in flight are skipped; a failure is left for the real read to
   * report.
   */
  private prefetch(inode: bigint, from: number, to: number): void {
    if (this.closed || this.prefetching >= this.readAheadLimit) return
    const cs = this.layout.chunkSize
    const first = Math.floor(from / cs)
    const last = Math.floor((to - 1) / cs)
    const run = async (): Promise<void> => {
      const lists = await chunkLists(this.readDeps(), inode, first, last, this.slices.mark(inode))
      const blocks: { key: string; blockLen: number }[] = []
      for (let idx = first; idx <= last; idx++) {
        const records = lists.get(idx) ?? []
        if (records.length === 0) continue
        const base = idx * cs
        blocks.push(...blocksOf(mergeSlices(records, Math.max(from, base) - base, Math.min(to, base + cs) - base), this.layout.blockSize))
      }
      await parallel(blocks, this.o.concurrency ?? 8, async (blk) => {
        if (this.prefetching + blk.blockLen > this.readAheadLimit) return
        this.prefetching += blk.blockLen
        try {
          await this.blocks.warm(blk.key, blk.blockLen)
        } finally {
          this.prefetching -= blk.blockLen
        }
      })
    }
    this.track(run().catch(() => undefined))
  }

  private blockReader(): BlockReader {
    return (key, blockLen, from, length) => this.blocks.read(key, blockLen, from, length)
  }

  /** Upload and attach what is staged for the inode; the caller holds the inode's turn. */
  private async flushNow(inode: bigint): Promise<void> {
    await this.settleDoubt(inode)
    const f = this.staging.take(inode)
    if (f === undefined) return
    const list = this.inflight.get(inode) ?? []
    list.push(f)
    this.inflight.set(inode, list)
    let unsettled = false
    try {
      const { counts, ver } = await this.upload(inode, f)
      this.slices.drop(inode)
      this.o.onChanged?.([inode], ver === undefined ? new Map() : new Map([[inode, ver]]))
      const at = this.o.compactAt ?? COMPACT_AT
      if (at > 0) for (const [idx, n] of counts) if (n > at) this.queueCompaction(inode, idx)
    } catch (err) {
      // Stored or not, nobody can say yet: neither promised nor flushed again until settled.
      if (err instanceof Unsettled) {
        unsettled = true
        this.doubts.set(inode, { f, u: err })
        throw storeError(err.cause, `flush of inode ${inode}`)
      }
      // Nothing was promised for these bytes yet: keep them for the next COMMIT, unless the file is gone.
      if (!(err instanceof VfsError && err.code === 'ESTALE')) this.staging.restore(inode, f)
      throw storeError(err, `flush of inode ${inode}`)
    } finally {
      if (!unsettled) this.dropInflight(inode, f)
    }
  }

  /**
   * Before the inode's next flush: what became of the one in doubt? Attached: its bytes are
   * stored (flushing them again would attach them twice). Not: they go back under what was
   * staged since. Throws, and the flush fails, while the database cannot say.
   */
  private async settleDoubt(inode: bigint): Promise<void> {
    const d = this.doubts.get(inode)
    if (d === undefined) return
    const attached = await settleLater(this.flushDeps(), d.u)
    this.doubts.delete(inode)
    this.dropInflight(inode, d.f)
    if (attached) {
      this.slices.drop(inode)
      this.o.onChanged?.([inode], new Map())
    } else {
      this.staging.restore(inode, d.f)
    }
  }

  /**
   * The file is gone: its flush in doubt is settled in the background. Its bytes are not
   * wanted either way, but a committed attach's are counted: the release uncounts them.
   */
  private dropDoubt(inode: bigint): void {
    const d = this.doubts.get(inode)
    if (d === undefined) return
    this.doubts.delete(inode)
    this.dropInflight(inode, d.f)
    const settling = settleLater(this.flushDeps(), d.u)
    this.dropSettles.add(settling)
    const done = (): void => { this.dropSettles.delete(settling) }
    settling.then(done, done)
    this.track(settling)
  }

  private dropInflight(inode: bigint, f: StagedFile): void {
    const rest = (this.inflight.get(inode) ?? []).filter((x) => x !== f)
    if (rest.length === 0) this.inflight.delete(inode)
    else this.inflight.set(inode, rest)
  }

  private upload(inode: bigint, f: StagedFile): Promise<Flushed> {
    return uploadAndAttach(this.flushDeps(), inode, f)
  }

  private flushDeps(): FlushDeps {
    return {
      ...this.o, layout: this.layout, sliceIds: this.sliceIds,
      stored: (bytes) => { this.usedDelta += bytes },
      track: (p) => { this.track(p) },
    }
  }

  private serialized<T>(inode: bigint, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(inode) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(() => undefined, () => undefined)
    this.locks.set(inode, tail)
    void tail.then(() => {
      if (this.locks.get(inode) === tail) this.locks.delete(inode)
    })
    return run
  }

  private flushIdle(before: number): void {
    for (const inode of new Set([...this.staging.idle(before), ...this.doubts.keys()])) {
      this.track(this.flush(inode))
    }
  }

  private queueCompaction(inode: bigint, idx: number): void {
    const key = `${inode}:${idx}`
    if (this.compacting.has(key) || this.closed) return
    this.compacting.add(key)
    this.track(this.compact(inode, idx).finally(() => this.compacting.delete(key)))
  }

  /** Blocks of slices at refs 0 go once the transaction that dropped them has committed; soon, off the request path. */
  private queueReap(): void {
    if (this.reapQueued || this.closed) return
    this.reapQueued = true
    // Twice: soon, and once the caller's transaction has surely committed.
    for (const ms of [200, SETTLE_MS + 500]) {
      const t = setTimeout(() => {
        this.reapQueued = false
        if (!this.closed) this.track(this.reap())
      }, ms)
      t.unref()
    }
  }

  /**
   * Delete the blocks and rows of slices at refs 0 (any server's). A removed file's doubt still
   * being settled goes first: the settling knows a committed attach by its slices' reference
   * rows, which the release left at refs 0. Reaped first, the attach would look as if it never
   * ran, and its bytes, which the release uncounted, would never have been counted (the usage
   * counter drifting below what is stored; CI saw -20000). Another server's reap can still take
   * such a row in the settling's few milliseconds; its own reaps are what follow a release at once.
   */
  async reap(): Promise<{ slices: number; blocks: number; bytes: number }> {
    while (this.dropSettles.size > 0) await Promise.allSettled([...this.dropSettles])
    return reapZeroRefs(this.o.db, this.o.store, this.layout.blockSize)
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.o.log?.(`cluster data: ${(err as Error).message}`)).finally(() => this.background.delete(q))
    this.background.add(q)
  }

  private assertOpen(): void {
    if (this.closed) throw new VfsError('EIO', 'file data layer is closed')
  }
}
