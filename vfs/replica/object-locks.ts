/*
 * The locks that order conflicting changes (server/replication/README.md
 * "Changes and their order"): the order in which the layer appends changes
 * must be an order in which the backend could have made them, or a standby
 * replaying the log ends elsewhere. Changes that touch the same name, or
 * the same file's size, are serialized; the rest commute.
 *
 * - a name: (directory vid, name), exclusive, for namespace changes (a
 *   rename takes both of its names);
 * - a file: shared for WRITE (writes to the same file commute in the log,
 *   as each ships the bytes the file holds when it is sent), exclusive for
 *   SETATTR (a size change must not pass a write).
 *
 * One call takes all the locks a change needs, in one global order (sorted
 * keys), so no two callers wait on each other in a cycle. Waiters are
 * served first come first served, so a stream of WRITEs cannot starve a
 * truncate. Idle locks are dropped, so memory follows what is in use.
 */
import type { FileRef } from '../types.ts'

export type LockMode = 'shared' | 'exclusive'

export interface LockRequest {
  readonly key: string
  readonly mode: LockMode
}

export function nameLock(dir: FileRef, name: Buffer): LockRequest {
  return { key: `n:${dir.id.toString(16)}:${name.toString('hex')}`, mode: 'exclusive' }
}

export function fileLock(f: FileRef, mode: LockMode): LockRequest {
  return { key: `f:${f.id.toString(16)}`, mode }
}

interface Waiter {
  readonly mode: LockMode
  readonly grant: () => void
}

interface LockState {
  readers: number
  writer: boolean
  readonly queue: Waiter[]
}

export class ObjectLocks {
  readonly #locks = new Map<string, LockState>()

  /** Locks held or waited for now. */
  get size(): number {
    return this.#locks.size
  }

  /** Takes every lock of `requests` (a key named twice is taken once, in its stronger mode); returns the release. */
  async acquire(requests: readonly LockRequest[]): Promise<() => void> {
    const byKey = new Map<string, LockMode>()
    for (const r of requests) if (byKey.get(r.key) !== 'exclusive') byKey.set(r.key, r.mode)
    const ordered = [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    const held: [string, LockMode][] = []
    for (const [key, mode] of ordered) {
      await this.#take(key, mode)
      held.push([key, mode])
    }
    let released = false
    return () => {
      if (released) return
      released = true
      for (const [key, mode] of held) this.#release(key, mode)
    }
  }

  #take(key: string, mode: LockMode): Promise<void> | undefined {
    let s = this.#locks.get(key)
    if (s === undefined) {
      s = { readers: 0, writer: false, queue: [] }
      this.#locks.set(key, s)
    }
    if (s.queue.length === 0 && !s.writer && (mode === 'shared' || s.readers === 0)) {
      if (mode === 'shared') s.readers++
      else s.writer = true
      return undefined
    }
    const state = s
    return new Promise<void>((resolve) => {
      state.queue.push({ mode, grant: resolve })
    })
  }

  #release(key: string, mode: LockMode): void {
    const s = this.#locks.get(key)
    if (s === undefined) return
    if (mode === 'shared') s.readers--
    else s.writer = false
    // Wake the front of the queue: one writer, or every reader up to the next writer.
    while (!s.writer) {
      const next = s.queue[0]
      if (next === undefined) break
      if (next.mode === 'exclusive') {
        if (s.readers > 0) break
        s.queue.shift()
        s.writer = true
        next.grant()
        break
      }
      s.queue.shift()
      s.readers++
      next.grant()
    }
    if (!s.writer && s.readers === 0 && s.queue.length === 0) this.#locks.delete(key)
  }
}
