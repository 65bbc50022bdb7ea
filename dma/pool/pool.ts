/*
 * A pool: a directory of tape files, each with a capacity and a label. A backup starts on a tape
 * of its own (a blank one, or one recycled by retention, under the tape's lock) and runs onto the
 * next when it hits the capacity (end of medium). With no tape to give, the pool names the label to create next.
 * Every change is a locked read-modify-write of pool.json, so the CLI can label tapes while a
 * manager writes.
 */
import { mkdir, open, truncate } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { DmaError, isErrno } from '../errors.ts'
import type { BackupStatus, PoolIndex, TapeRecord } from './index-file.ts'
import { readIndex, tapePath, writeIndex } from './index-file.ts'
import { lockTape, TapeLockError } from '../../backup/tape-lock.ts'
import { withLock } from './lock.ts'
import { recyclableTapes } from './retention.ts'

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
export const DEFAULT_CAPACITY = 4 * 1024 ** 3
export const DEFAULT_KEEP_CHAINS = 2

/** What allocate() gives: a tape to write, or the label the operator should create. */
export type Allocation = { readonly label: string; readonly path: string } | { readonly needs: string; readonly isNew: boolean }

export class Pool {
  readonly dir: string
  private constructor(dir: string) {
    this.dir = dir
  }

  /** The pool in `dir` (it must exist: label a tape to make one). */
  static async open(dir: string): Promise<Pool> {
    const pool = new Pool(resolve(dir))
    await readIndex(pool.dir)
    return pool
  }

  index(): Promise<PoolIndex> {
    return readIndex(this.dir)
  }

  /** Labels a new blank tape (making the pool on first use, with `options` as its defaults). */
  static async label(dir: string, label: string, options: { capacity?: number; keepChains?: number } = {}): Promise<TapeRecord> {
    if (!LABEL.test(label)) throw new DmaError('DMA_BAD_LABEL', `"${label}" is not a label (1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -)`)
    const abs = resolve(dir)
    await mkdir(abs, { recursive: true })
    return withLock(join(abs, 'pool.lock'), async () => {
      let index: PoolIndex
      try {
        index = await readIndex(abs)
      } catch (err) {
        if (!(err instanceof DmaError) || err.code !== 'DMA_NO_POOL') throw err
        index = { name: basename(abs), capacity: options.capacity ?? DEFAULT_CAPACITY, keepChains: options.keepChains ?? DEFAULT_KEEP_CHAINS, tapes: [], backups: [] }
      }
      if (index.tapes.some((t) => t.label === label)) throw new DmaError('DMA_LABEL_EXISTS', `${abs}: tape ${label} is labelled already`)
      const capacity = options.capacity ?? index.capacity
      if (!Number.isSafeInteger(capacity) || capacity < 1) throw new DmaError('DMA_BAD_LABEL', `a capacity of ${capacity} bytes`)
      try {
        await (await open(tapePath(abs, label), 'wx', 0o600)).close()
      } catch (err) {
        if (isErrno(err, 'EEXIST')) throw new DmaError('DMA_LABEL_EXISTS', `${tapePath(abs, label)} exists (not in the pool's index)`)
        throw err
      }
      const tape: TapeRecord = { label, capacity, state: 'blank', used: 0 }
      index.tapes.push(tape)
      await writeIndex(abs, index)
      return tape
    })
  }

  private change<T>(fn: (index: PoolIndex) => T | Promise<T>): Promise<T> {
    return withLock(join(this.dir, 'pool.lock'), async () => {
      const index = await readIndex(this.dir)
      const out = await fn(index)
      await writeIndex(this.dir, index)
      return out
    })
  }

  /** Starts recording a backup (its tapes come from allocate()). */
  beginBackup(job: string, exportName: string, level: number, startedAt: Date): Promise<void> {
    return this.change((index) => {
      index.backups = index.backups.filter((b) => b.job !== job)
      index.backups.push({ job, export: exportName, level, startedAt: startedAt.toISOString(), status: 'writing', tapes: [], bytes: 0 })
    })
  }

  /**
   * The next tape for `job`: a blank one (in label order), else one retention lets go (emptied),
   * else the label to create (the lowest free NAME-NNN), or the first blank one if one appears.
   */
  allocate(job: string): Promise<Allocation> {
    return this.change(async (index) => {
      const backup = index.backups.find((b) => b.job === job)
      if (backup === undefined) throw new DmaError('DMA_JOB_STATE', `${this.dir}: no backup of job ${job} is being written`)
      let tape = index.tapes.find((t) => t.state === 'blank')
      if (tape === undefined) {
        tape = await this.recycle(index)
        if (tape !== undefined) {
          const freed = tape.label
          // The expired backups that lived on it are gone with it.
          index.backups = index.backups.filter((b) => b.job === job || !b.tapes.includes(freed))
          tape.used = 0
        }
      }
      if (tape === undefined) return { needs: nextFreeLabel(index), isNew: true }
      tape.state = 'writing'
      backup.tapes.push(tape.label)
      return { label: tape.label, path: tapePath(this.dir, tape.label) }
    })
  }

  /**
   * Empties the first recyclable tape that no one holds: a verify or a restore reading it, or a
   * backup of another pool process writing it, holds its tape lock, and emptying it under them
   * would turn their read into garbage. A held tape is passed over for the next; if every
   * recyclable tape is held, the first one's TAPE_BUSY (naming its holder) fails the allocation.
   */
  private async recycle(index: PoolIndex): Promise<TapeRecord | undefined> {
    let busy: TapeLockError | undefined
    for (const label of recyclableTapes(index)) {
      const tape = index.tapes.find((t) => t.label === label)
      if (tape === undefined) continue
      let lock
      try {
        lock = await lockTape(tapePath(this.dir, label), 'pool recycling')
      } catch (err) {
        if (!(err instanceof TapeLockError)) throw err
        busy ??= err
        continue
      }
      try {
        await truncate(lock.tape, 0)
      } finally {
        await lock.release()
      }
      return tape
    }
    if (busy !== undefined) throw busy
    return undefined
  }

  /** The tape allocate() would give now (without taking it), or the label to create. */
  async peek(): Promise<{ label: string; isNew: boolean }> {
    const index = await this.index()
    const label = index.tapes.find((t) => t.state === 'blank')?.label ?? recyclableTapes(index)[0]
    return label === undefined ? { label: nextFreeLabel(index), isNew: true } : { label, isNew: false }
  }

  /** Records bytes written on a tape (accounting, and the position a continuing stream resumes at). */
  wrote(label: string, used: number): Promise<void> {
    return this.change((index) => {
      const t = index.tapes.find((x) => x.label === label)
      if (t !== undefined) t.used = used
    })
  }

  /** The tape reached its capacity (EOM): it holds data and takes no more. */
  markFull(label: string, used: number): Promise<void> {
    return this.change((index) => {
      const t = index.tapes.find((x) => x.label === label)
      if (t !== undefined) {
        t.state = 'full'
        t.used = used
      }
    })
  }

  /** The backup ended: its last tape is closed (used) and the backup's status kept for retention. */
  endBackup(job: string, status: BackupStatus, bytes: number): Promise<void> {
    return this.change((index) => {
      const b = index.backups.find((x) => x.job === job)
      if (b === undefined) return
      b.status = status
      b.bytes = bytes
      for (const t of index.tapes) if (t.state === 'writing' && b.tapes.includes(t.label)) t.state = 'used'
    })
  }
}

function nextFreeLabel(index: PoolIndex): string {
  const taken = new Set(index.tapes.map((t) => t.label))
  const stem = index.name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '').slice(0, 56) || 'tape'
  for (let n = 1; ; n++) {
    const label = `${stem}-${String(n).padStart(3, '0')}`
    if (!taken.has(label)) return label
  }
}
