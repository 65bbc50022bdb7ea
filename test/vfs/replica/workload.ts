/*
 * A seeded random sequence of Vfs calls through a replicating layer: every kind of change, on a
 * small set of names so that calls collide (EEXIST, ENOENT, ENOTEMPTY, rename over, hard links,
 * stale handles), plus reads that meet objects. Counts the calls that failed and whether any of
 * them appended a change.
 */
import type { CreateMode, FileRef, SetAttr, Stability, Vfs } from '../../../vfs/types.ts'
import type { ArraySink } from './replica-helpers.ts'
import { isVfsError, list } from './replica-helpers.ts'

export interface WorkloadStats {
  calls: number
  failed: number
  /** Failed calls that appended a change anyway: must stay 0. */
  failedAppended: number
  /** Errors that were not a VfsError: must stay empty. */
  strange: string[]
  ok: Record<string, number>
  /** Failures by errno. */
  errors: Record<string, number>
}

export function newStats(): WorkloadStats {
  return { calls: 0, failed: 0, failedAppended: 0, strange: [], ok: {}, errors: {} }
}

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((n) => Buffer.from(n))

export class Workload {
  readonly #vfs: Vfs
  readonly #sink: ArraySink
  readonly #rnd: () => number
  readonly #dirs: FileRef[]
  /** Directories made so far, where they were made (some renamed or removed since). */
  readonly #made: { dir: FileRef; name: Buffer }[] = []
  /** Files made so far (some removed since: their vids are then stale). */
  readonly #files: FileRef[] = []
  readonly stats = newStats()
  #n = 0

  constructor(vfs: Vfs, sink: ArraySink, rnd: () => number) {
    this.#vfs = vfs
    this.#sink = sink
    this.#rnd = rnd
    this.#dirs = [vfs.root()]
  }

  async run(calls: number): Promise<void> {
    for (let i = 0; i < calls; i++) await this.#one()
  }

  #int(n: number): number {
    return Math.floor(this.#rnd() * n)
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[this.#int(xs.length)] as T
  }

  #dir(): FileRef {
    return this.#pick(this.#dirs)
  }

  #name(): Buffer {
    return this.#pick(NAMES)
  }

  #owner(): { uid: number; gid: number } {
    return { uid: this.#pick([0, 1000]), gid: this.#pick([0, 1000]) }
  }

  #bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.#int(256)
    return b
  }

  async #any(): Promise<FileRef> {
    if (this.#files.length > 0 && this.#rnd() < 0.7) return this.#pick(this.#files)
    return (await this.#vfs.lookup(this.#dir(), this.#name())).ref
  }

  #createMode(): CreateMode {
    const how = this.#pick(['guarded', 'unchecked', 'exclusive'] as const)
    if (how === 'exclusive') return { how, verifier: this.#bytes(8) }
    const attr: SetAttr = { mode: this.#pick([0o644, 0o600, 0o755]) }
    if (how === 'unchecked' && this.#rnd() < 0.3) attr.size = 0n
    return { how, attr }
  }

  #setAttr(): SetAttr {
    switch (this.#int(5)) {
      case 0:
        return { size: BigInt(this.#int(12_000)) }
      case 1:
        return { mode: this.#pick([0o600, 0o640, 0o755, 0o4755]) }
      case 2:
        return { mtime: { sec: 1_000_000_000 + this.#int(700_000_000), nsec: this.#int(1_000_000_000) }, atime: { sec: 1_600_000_000, nsec: 5 } }
      case 3:
        return { atime: 'now', mtime: 'now' }
      default:
        return this.#owner()
    }
  }

  async #call(): Promise<string> {
    const v = this.#vfs
    const op = this.#pick(['create', 'create', 'mkdir', 'symlink', 'mknod', 'write', 'write', 'write', 'setattr', 'remove', 'rmdir', 'rename', 'rename', 'link', 'commit', 'read', 'exclusive-again'] as const)
    switch (op) {
      case 'create':
        this.#files.push((await v.create(this.#dir(), this.#name(), this.#createMode(), this.#owner())).ref)
        break
      case 'exclusive-again': {
        // A retransmitted EXCLUSIVE create (RFC 1813 §3.3.8): the second finds its own verifier.
        const dir = this.#dir()
        const name = this.#name()
        const verifier = this.#bytes(8)
        await v.create(dir, name, { how: 'exclusive', verifier }, { uid: 0, gid: 0 })
        await v.create(dir, name, { how: 'exclusive', verifier }, { uid: 0, gid: 0 })
        break
      }
      case 'mkdir': {
        const dir = this.#dir()
        const name = this.#name()
        this.#dirs.push((await v.mkdir(dir, name, { mode: this.#pick([0o755, 0o700]) }, this.#owner())).ref)
        this.#made.push({ dir, name })
        break
      }
      case 'symlink':
        await v.symlink(this.#dir(), this.#name(), Buffer.from(`target-${this.#n}`), {}, this.#owner())
        break
      case 'mknod':
        await v.mknod(this.#dir(), this.#name(), 'fifo', { major: 0, minor: 0 }, { mode: 0o640 }, this.#owner())
        break
      case 'write': {
        const stable: Stability = this.#pick(['unstable', 'unstable', 'data_sync', 'file_sync'])
        await v.write(await this.#any(), BigInt(this.#int(8000)), this.#bytes(1 + this.#int(3000)), stable)
        break
      }
      case 'setattr':
        await v.setattr(await this.#any(), this.#setAttr())
        break
      case 'remove':
        await v.remove(this.#dir(), this.#name())
        break
      case 'rmdir': {
        const at = this.#made.length > 0 && this.#rnd() < 0.7 ? this.#pick(this.#made) : { dir: this.#dir(), name: this.#name() }
        await v.rmdir(at.dir, at.name)
        break
      }
      case 'rename':
        await v.rename(this.#dir(), this.#name(), this.#dir(), this.#name())
        break
      case 'link':
        await v.link(await this.#any(), this.#dir(), this.#name())
        break
      case 'commit':
        await v.commit(await this.#any(), 0n, 0)
        break
      case 'read':
        await list(v, this.#dir(), 1 + this.#int(4))
        break
    }
    return op
  }

  async #one(): Promise<void> {
    this.#n++
    this.stats.calls++
    const before = this.#sink.changes.length
    try {
      const op = await this.#call()
      this.stats.ok[op] = (this.stats.ok[op] ?? 0) + 1
    } catch (err) {
      this.stats.failed++
      // (An exclusive-again's second create finds its own verifier and succeeds, so no call half-succeeds.)
      if (this.#sink.changes.length !== before) this.stats.failedAppended++
      if (!isVfsError(err)) this.stats.strange.push(String(err))
      else this.stats.errors[err.code] = (this.stats.errors[err.code] ?? 0) + 1
    }
  }
}
