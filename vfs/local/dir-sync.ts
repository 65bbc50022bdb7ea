/*
 * Group commit of fsyncs by object (LocalVfs.commitMetadata). RFC 1813 §1.6
 * makes CREATE, MKDIR, REMOVE, RENAME and the other namespace procedures
 * synchronous: on a local file system that is an fsync of the directory
 * changed, before the reply. Thirty-two CREATEs in one directory at once must
 * not become thirty-two fsyncs queued on libuv's four pool threads (where
 * READs and the other fsyncs wait behind them): a request for an object whose
 * fsync is already running joins the one next round, which starts when the
 * running one ends and covers every change made before it starts. So at most
 * one round runs and one waits per object; distinct objects sync in parallel,
 * up to `maxRunning` rounds at once (the rest wait in arrival order, still
 * collecting joiners), so fsyncs never take every pool thread.
 */
import fs from 'node:fs'
import { VfsError } from '../errors.ts'
import type { IoFiles } from './io-files.ts'
import type { Pinned } from './resolver.ts'
import { fdPath, fsync, openNow, toVfsError } from './sys.ts'

interface Round<A> {
  /** What the first request of the round passed (the object, as it named it). */
  readonly arg: A
  readonly promise: Promise<void>
  resolve(): void
  reject(err: unknown): void
}

interface Slot<A> {
  running: boolean
  /** The round not started yet, which every new request joins. */
  next: Round<A> | null
}

function newRound<A>(arg: A): Round<A> {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { arg, promise, resolve, reject }
}

export class CoalescingSync<K, A> {
  readonly #run: (arg: A) => Promise<void>
  readonly #maxRunning: number
  readonly #slots = new Map<K, Slot<A>>()
  /** Keys with a round waiting and none running, in arrival order (a Set keeps insertion order). */
  readonly #ready = new Set<K>()
  #running = 0
  /** Rounds run (for tests and stats). */
  rounds = 0

  /** `run` does one round for an object (an fsync); its failure becomes EIO for every request of that round. */
  constructor(run: (arg: A) => Promise<void>, maxRunning: number) {
    this.#run = run
    this.#maxRunning = Math.max(1, maxRunning)
  }

  /** Resolves once a round that started after this call has ended well for `key` (`arg` names it to `run`). */
  sync(key: K, arg: A): Promise<void> {
    let slot = this.#slots.get(key)
    if (slot === undefined) {
      slot = { running: false, next: null }
      this.#slots.set(key, slot)
    }
    if (slot.next !== null) return slot.next.promise
    const round = newRound(arg)
    slot.next = round
    if (!slot.running) this.#ready.add(key)
    this.#pump()
    return round.promise
  }

  #pump(): void {
    for (const key of this.#ready) {
      if (this.#running >= this.#maxRunning) return
      this.#ready.delete(key)
      const slot = this.#slots.get(key)
      const round = slot?.next ?? null
      if (slot === undefined || round === null) continue
      slot.next = null
      slot.running = true
      this.#running++
      this.rounds++
      void this.#start(key, slot, round)
    }
  }

  async #start(key: K, slot: Slot<A>, round: Round<A>): Promise<void> {
    try {
      await this.#run(round.arg)
      round.resolve()
    } catch (err) {
      round.reject(err instanceof VfsError && err.code === 'EIO' ? err : new VfsError('EIO', 'fsync failed', { cause: err }))
    } finally {
      this.#running--
      slot.running = false
      if (slot.next !== null) this.#ready.add(key)
      else this.#slots.delete(key)
      this.#pump()
    }
  }
}

/** libuv's pool size (UV_THREADPOOL_SIZE, else its default 4): fsync rounds take at most half of it. */
export function syncRoundsAllowed(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE ?? '')
  return Math.max(1, Math.floor((Number.isInteger(pool) && pool > 0 ? pool : 4) / 2))
}

/**
 * fsync of a pinned object: a directory reopened read-only through its O_PATH pin (exactly that
 * inode, nothing looked up by name), a regular file through its cached I/O fd. A symlink or a
 * device node cannot be opened for fsync without following it or opening the device; its inode
 * change rides in the journal transaction its directory's fsync commits (ext4, xfs).
 */
export async function fsyncPinned(io: IoFiles, p: Pinned): Promise<void> {
  if (p.type === 'dir') {
    let fd: number
    try {
      fd = openNow(fdPath(p.fd), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
    } catch (err) {
      throw toVfsError(err)
    }
    try {
      await fsync(fd)
    } finally {
      fs.closeSync(fd)
    }
    return
  }
  if (p.type !== 'file') return
  const f = io.acquire(p, false)
  try {
    await fsync(f.fd)
  } catch (err) {
    // As after a failed COMMIT (file-io.ts): no later fsync through this fd may look clean.
    void io.drop(p.id)
    throw err
  } finally {
    io.release(f)
  }
}
