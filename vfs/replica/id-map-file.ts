/*
 * The id map's files (format in id-map-format.ts): loads them, appends
 * records, makes them durable with group commit and compacts the log into a
 * new snapshot when it grows.
 *
 * push() writes the records so far to the file without syncing them: a
 * standby does so after each change it applies, so after a process crash
 * (SIGKILL) the map on disk matches the backend, whose changes are in the
 * same kernel's page cache; only a machine crash can leave the map behind
 * the backend (applier.ts copes with that too, less exactly).
 *
 * Group commit: every sync() that arrives while a batch is being written
 * joins the next batch, so N concurrent callers cost at most two fsyncs, as
 * a journal's commit does. A failed write leaves the map's durability
 * unknown: every later sync() fails with the same EIO until the map is
 * reopened (which reloads what did reach the disk).
 */
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { VfsError } from '../errors.ts'
import type { MapRecord } from './id-map-format.ts'
import { encodeRecord, header, LOG_FILE, MAP_VERSION, parse, readIfExists, replaceDurably, SNAP_FILE } from './id-map-format.ts'

const fdatasync = promisify(fs.fdatasync)
const close = promisify(fs.close)

/** Compact when the log holds this many records and more than twice the live ones. */
const DEFAULT_COMPACT_RECORDS = 100_000

export interface MapFileHooks {
  /** The whole map as records (a state record first), for a snapshot. */
  snapshot: () => MapRecord[]
  /** Live bindings now (compaction pays off only when the log is much longer). */
  live: () => number
  compactRecords?: number
}

function eio(file: string, err: unknown): VfsError {
  if (err instanceof VfsError) return err
  return new VfsError('EIO', `id map ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}

export class MapFile {
  readonly #snapFile: string
  readonly #logFile: string
  readonly #hooks: MapFileHooks
  readonly #compactAt: number
  #fd: number
  #generation: bigint
  #logRecords: number
  #pending: Buffer[] = []
  #queued: Promise<void> | null = null
  #tail: Promise<void> = Promise.resolve()
  #inflight = 0
  #failed: VfsError | null = null
  /** Records written by push() and not yet synced. */
  #unsynced = false
  /** While a snapshot is written, records wait in #pending (the old log is about to be replaced). */
  #compacting = false

  private constructor(dir: string, fd: number, generation: bigint, logRecords: number, hooks: MapFileHooks) {
    this.#snapFile = path.join(dir, SNAP_FILE)
    this.#logFile = path.join(dir, LOG_FILE)
    this.#fd = fd
    this.#generation = generation
    this.#logRecords = logRecords
    this.#hooks = hooks
    this.#compactAt = hooks.compactRecords ?? DEFAULT_COMPACT_RECORDS
  }

  /** Opens (or creates) the files in `dir`; returns the records to replay, oldest first. */
  static async open(dir: string, hooks: MapFileHooks): Promise<{ file: MapFile; records: MapRecord[]; oldVersion: boolean }> {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 })
    const snapFile = path.join(dir, SNAP_FILE)
    const logFile = path.join(dir, LOG_FILE)
    const snap = readIfExists(snapFile)
    const s = snap === null ? null : parse(snap, snapFile, true)
    const generation = s?.generation ?? 0n
    const records = s === null ? [] : [...s.records]
    let oldVersion = s !== null && s.version < MAP_VERSION
    const log = readIfExists(logFile)
    let logRecords = 0
    let fresh = true
    if (log !== null) {
      const l = parse(log, logFile, false)
      if (l.generation > generation) throw new VfsError('EIO', `id map ${logFile}: generation ${l.generation.toString()} has no snapshot (snapshot is ${generation.toString()})`)
      if (l.generation === generation) {
        records.push(...l.records)
        if (l.version < MAP_VERSION) oldVersion = true
        logRecords = l.records.length
        fresh = false
        // A torn tail from a crash mid-append: cut it, so the next append follows a whole record.
        if (l.validLength < log.length) {
          await fs.promises.truncate(logFile, l.validLength)
        }
      }
      // An older generation: compaction wrote the snapshot and crashed before replacing the log; the snapshot holds it all.
    }
    if (fresh) await replaceDurably(logFile, header(generation))
    const fd = fs.openSync(logFile, 'a', 0o600)
    return { file: new MapFile(dir, fd, generation, logRecords, hooks), records, oldVersion }
  }

  /** Writes the whole map anew in this build's version (a snapshot and an empty log): a map read from older files, at open. */
  async rewrite(): Promise<void> {
    await this.sync()
    await this.#compact()
  }

  append(rec: MapRecord): void {
    this.#pending.push(encodeRecord(rec))
  }

  /** Writes the records appended so far to the file, without waiting for the disk. */
  push(): void {
    if (this.#failed !== null || this.#compacting || this.#pending.length === 0) return
    try {
      this.#writeOut()
    } catch (err) {
      this.#failed = eio(this.#logFile, err)
    }
  }

  /** Resolves once every record appended before the call is on disk. */
  sync(): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failed)
    if (this.#queued !== null) return this.#queued
    if (this.#pending.length === 0 && !this.#unsynced && this.#inflight === 0) return Promise.resolve()
    this.#inflight++
    const q = this.#tail.then(() => {
      this.#queued = null
      return this.#writeBatch()
    })
    this.#queued = q
    this.#tail = q.then(
      () => {
        this.#inflight--
      },
      (err: unknown) => {
        this.#inflight--
        this.#failed ??= eio(this.#logFile, err)
      },
    )
    return q
  }

  async close(): Promise<void> {
    await this.sync().catch(() => undefined)
    await close(this.#fd)
  }

  /** Appends the pending records (a few hundred bytes: a synchronous write keeps them in order with the backend's changes). */
  #writeOut(): void {
    const data = Buffer.concat(this.#pending)
    const records = this.#pending.length
    this.#pending = []
    let done = 0
    while (done < data.length) done += fs.writeSync(this.#fd, data, done, data.length - done)
    this.#logRecords += records
    this.#unsynced = true
  }

  async #writeBatch(): Promise<void> {
    if (this.#failed !== null) throw this.#failed
    if (this.#pending.length === 0 && !this.#unsynced) return
    try {
      if (this.#pending.length > 0) this.#writeOut()
      // Cleared before the wait: a push() during it needs the next sync.
      this.#unsynced = false
      await fdatasync(this.#fd)
      if (this.#logRecords >= this.#compactAt && this.#logRecords > 2 * this.#hooks.live()) await this.#compact()
    } catch (err) {
      throw eio(this.#logFile, err)
    }
  }

  /**
   * A snapshot of the whole map as generation g + 1, then an empty log of g + 1. Records still
   * pending are in the snapshot and go to the new log too: replaying a bind or unbind over a
   * state that already has it changes nothing.
   */
  async #compact(): Promise<void> {
    this.#compacting = true
    try {
      const generation = this.#generation + 1n
      const parts = [header(generation), ...this.#hooks.snapshot().map(encodeRecord)]
      await replaceDurably(this.#snapFile, Buffer.concat(parts))
      await replaceDurably(this.#logFile, header(generation))
      const old = this.#fd
      this.#fd = fs.openSync(this.#logFile, 'a', 0o600)
      this.#generation = generation
      this.#logRecords = 0
      await close(old)
    } finally {
      this.#compacting = false
    }
  }
}
