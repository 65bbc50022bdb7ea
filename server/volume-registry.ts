/*
 * The volumes this server serves (issue 14 item 3): volume-backend.ts adds each one it opens and
 * removes it when the export closes. The admin channel finds volumes here by name, the metrics
 * render their state from here, and a long operation (replace, scrub) lives here, not in the
 * admin connection that started it: the client may go away, the operation goes on, and status
 * shows it.
 */
import type { EngineVfs } from '../vfs/engine/fs/engine-vfs.ts'
import type { GrowResult } from '../vfs/engine/resize/grow-fs.ts'
import type { VolumeEvent, VolumeEventKind } from '../vfs/volume/layer.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'
import type { VolumeSnapshots } from './volume-snapshots.ts'

export type OperationKind = 'replace' | 'scrub' | 'grow'

export interface OperationProgress {
  readonly operation: OperationKind
  readonly volume: string
  /** The configuration member a replace rebuilds. */
  readonly member?: number
  readonly done: number
  readonly total: number
}

/** A long operation running on a volume; `progress` is replaced at each step. */
export interface VolumeOperation {
  readonly kind: OperationKind
  readonly member?: number
  readonly disk?: string
  readonly startedAt: string
  progress: OperationProgress
  /** Called at each step; an admin connection adds itself and removes itself when it goes. */
  readonly watchers: Set<(p: OperationProgress) => void>
  readonly finished: Promise<void>
}

/** How the last long operation ended. */
export interface FinishedOperation {
  readonly kind: OperationKind
  readonly ok: boolean
  readonly message: string
  readonly finishedAt: string
}

export class ServedVolume {
  /** What the export's volume= names (a name or an id) until the volume is open. */
  readonly #asked: string
  readonly exportPath: string
  /** Set once openVolume returns (events may come before, during the resync at open). */
  volume: OpenVolume | null = null
  engine: EngineVfs | null = null
  /** Create, list and delete snapshots (the .snapshot view follows); set with the engine. */
  snapshots: VolumeSnapshots | null = null
  operation: VolumeOperation | null = null
  lastOperation: FinishedOperation | null = null
  readonly events = new Map<VolumeEventKind, number>()
  scrubMismatches = 0
  /** Bytes per second of a rebuild started here without a rate of its own (the export's rebuild_rate=; 0: no limit). */
  rebuildRate = 0
  /**
   * Set by volume-backend.ts once the export serves: holds the export's calls, closes the engine
   * and the volume, runs `change` on the volume's disk paths (closed: nothing else has them open),
   * reassembles from the paths it returns, grows the file system to the volume's new size, opens a
   * new engine under the export and lets the calls go on. A failed change still reopens the volume
   * (on the old paths if the new ones do not assemble) and rethrows.
   */
  regrow: ((change: (paths: readonly string[]) => Promise<readonly string[]>) => Promise<{ volume: OpenVolume; fs: GrowResult }>) | null = null

  constructor(asked: string, exportPath: string) {
    this.#asked = asked
    this.exportPath = exportPath
  }

  /** The configuration's name once open. */
  get name(): string {
    return this.volume?.config.name ?? this.#asked
  }

  count(e: VolumeEvent): void {
    this.events.set(e.kind, (this.events.get(e.kind) ?? 0) + 1)
  }

  /**
   * Runs `work` as this volume's long operation: one at a time (a second is refused by the
   * caller, see `busy`), its progress published to watchers, its end kept in lastOperation.
   */
  start(kind: OperationKind, extra: { member?: number; disk?: string }, work: (report: (done: number, total: number) => void) => Promise<string>): VolumeOperation {
    const watchers = new Set<(p: OperationProgress) => void>()
    const base = { operation: kind, volume: this.name, ...(extra.member === undefined ? {} : { member: extra.member }) }
    let op: VolumeOperation | undefined = undefined
    const report = (done: number, total: number): void => {
      if (op === undefined) return
      op.progress = { ...base, done, total }
      for (const w of watchers) w(op.progress)
    }
    const finished = Promise.resolve()
      .then(() => work(report))
      .then(
        (message) => {
          this.lastOperation = { kind, ok: true, message, finishedAt: new Date().toISOString() }
        },
        (err: unknown) => {
          this.lastOperation = { kind, ok: false, message: err instanceof Error ? err.message : String(err), finishedAt: new Date().toISOString() }
          throw err
        },
      )
      .finally(() => {
        this.operation = null
      })
    // Nobody may be waiting (the client went away): the failure is kept in lastOperation, not thrown into the void.
    finished.catch(() => undefined)
    op = { kind, ...extra, startedAt: new Date().toISOString(), progress: { ...base, done: 0, total: 0 }, watchers, finished }
    this.operation = op
    return op
  }
}

export class VolumeRegistry {
  readonly #byName = new Map<string, ServedVolume>()

  /** Adds `v` under its name; false (and nothing changed) when another volume of that name is served. */
  add(v: ServedVolume): boolean {
    if (this.#byName.has(v.name)) return false
    this.#byName.set(v.name, v)
    return true
  }

  remove(v: ServedVolume): void {
    if (this.#byName.get(v.name) === v) this.#byName.delete(v.name)
  }

  get(name: string): ServedVolume | undefined {
    return this.#byName.get(name)
  }

  all(): ServedVolume[] {
    return [...this.#byName.values()].sort((a, b) => a.name.localeCompare(b.name))
  }
}
