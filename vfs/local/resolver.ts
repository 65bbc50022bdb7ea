/*
 * FileRef -> an O_PATH fd on exactly that object, inside the export.
 *
 * A ref is (inode, generation). Resolution: a cached O_PATH fd for the
 * inode (still linked, same generation), else walk the index's parent links
 * to the root and open each component from its parent's fd with O_NOFOLLOW
 * (never through a symlink, never above the root: the walk starts at the
 * root fd and names never contain `/` and are never `.` or `..`). If the
 * index has no entry, or the path it gives now holds another inode (the tree
 * changed on the host), a breadth-first search of the export (bounded,
 * crossing into mounted file systems only with crossmnt) finds the inode and
 * repairs the index. The same inode with another generation is a reused
 * inode number: ESTALE, never the other file.
 *
 * Ids are device-qualified (devices.ts): the raw inode on the root's device,
 * a device number from the export's device table above bit 47 on a crossed
 * one. An object that cannot have an id (another device without crossmnt,
 * an inode too large, a full table) is not exportable: `idOf` says null.
 */
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import type { FileRef, FileType } from '../types.ts'
import { fileType, genFromBirth, randomGen } from './attr.ts'
import { qualify, splitId } from './devices.ts'
import type { DeviceTable } from './devices.ts'
import type { FdCache, FdEntry } from './fd-cache.ts'
import type { HandleIndex } from './handle-index.ts'
import { closeQuietly, codeOf, fdPath, fstatNow, lstat, lstatOrNull, openNow, PIN_FLAGS, readdirNames, toVfsError } from './sys.ts'

export interface Pinned {
  readonly fd: number
  /** The device-qualified id (the FileRef id), not the raw inode number. */
  readonly id: bigint
  readonly gen: number
  /** Fresh attributes, taken when the object was pinned. */
  readonly st: BigIntStats
  readonly type: FileType
  release(): void
}

type Walk = { kind: 'ok'; pinned: Pinned } | { kind: 'stale' } | { kind: 'miss' }

export interface ResolverOptions {
  rootFd: number
  rootSt: BigIntStats
  rootGen: number
  index: HandleIndex
  cache: FdCache
  /** Entries a fallback search may visit. */
  searchLimit: number
  /** The export's device table when it crosses into mounted file systems (crossmnt); null: it does not. */
  devices: DeviceTable | null
}

/** Deeper than any path Linux can name (PATH_MAX 4096 / 2): a loop in a corrupt index. */
const MAX_DEPTH = 2048
const SEARCH_BATCH = 32
/** A search that did not find an inode is not repeated for it for this long (a stale handle retried in a loop). */
const NOT_FOUND_TTL_MS = 30_000
const NOT_FOUND_MAX = 10_000
const MISS_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP'])

export class Resolver {
  readonly rootFd: number
  readonly rootId: bigint
  readonly rootDev: bigint
  readonly rootGen: number
  readonly #index: HandleIndex
  readonly #cache: FdCache
  readonly #searchLimit: number
  readonly #devices: DeviceTable | null
  /** The root as the parent of a walk step: its fd, no fresh stat (its attributes, from the start, are never returned). */
  readonly #rootAsParent: Walk
  /**
   * Searches that did not find an id: until when not to repeat them, and the index entry they
   * started from. A new entry for the id (a file made through us that reused the inode number of
   * one removed) searches again: the answer was about the old object.
   */
  readonly #notFound = new Map<bigint, { until: number; seen: unknown }>()
  #searchChain: Promise<unknown> = Promise.resolve()
  searches = 0

  constructor(o: ResolverOptions) {
    this.rootFd = o.rootFd
    this.rootId = o.rootSt.ino
    this.rootDev = o.rootSt.dev
    this.rootGen = o.rootGen
    this.#rootAsParent = { kind: 'ok', pinned: { fd: o.rootFd, id: o.rootSt.ino, gen: o.rootGen, st: o.rootSt, type: 'dir', release: () => undefined } }
    this.#index = o.index
    this.#cache = o.cache
    this.#searchLimit = o.searchLimit
    this.#devices = o.devices
  }

  /** True when objects on file systems mounted below the root are served. */
  get crossmnt(): boolean {
    return this.#devices !== null
  }

  /**
   * The id of a stat result, or null when the object is not exportable. A device seen for the
   * first time is added to the device table (durably) before its id is returned.
   */
  idOf(st: BigIntStats): bigint | null {
    if (st.dev === this.rootDev) return qualify(0, st.ino)
    if (this.#devices === null) return null
    let k: number | null
    try {
      k = this.#devices.numberOf(st.dev)
    } catch (err) {
      throw toVfsError(err)
    }
    return k === null ? null : qualify(k, st.ino)
  }

  /** The id of a stat result when its device is already known (never adds a device); null otherwise. */
  knownId(st: BigIntStats): bigint | null {
    if (st.dev === this.rootDev) return qualify(0, st.ino)
    const k = this.#devices?.find(st.dev)
    return k === undefined ? null : qualify(k, st.ino)
  }

  /** The generation of a stat result with id `id`: from the birth time, else the one the index recorded, else a new one. */
  genOf(st: BigIntStats, id: bigint): number {
    if (id === this.rootId && st.dev === this.rootDev) return this.rootGen
    return genFromBirth(st) ?? this.#index.get(id)?.gen ?? randomGen()
  }

  /** Records a child seen by name in directory `dirId`; its id and generation, or null when it is not exportable. */
  note(dirId: bigint, name: Buffer, st: BigIntStats): { id: bigint; gen: number } | null {
    const id = this.idOf(st)
    if (id === null) return null
    const gen = this.genOf(st, id)
    this.#index.set(id, dirId, name, gen)
    return { id, gen }
  }

  /** The object is gone (its last link removed through us); `small`: its fd may be closed at once (fd-cache.ts). */
  forget(id: bigint, small = false): Promise<void> {
    this.#index.delete(id)
    return this.#cache.evict(id, small)
  }

  async pin(ref: FileRef): Promise<Pinned> {
    // An id on a device number the table does not hold was never handed out: no search can find it.
    const { k } = splitId(ref.id)
    if (k !== 0 && this.#devices?.devOf(k) === undefined) throw new VfsError('ESTALE')
    let w = this.#walk(ref.id, ref.gen, 0)
    if (w.kind === 'miss' && (await this.#search(ref.id, this.#index.get(ref.id)))) w = this.#walk(ref.id, ref.gen, 0)
    if (w.kind === 'ok') return w.pinned
    throw new VfsError('ESTALE')
  }

  async pinDir(ref: FileRef): Promise<Pinned> {
    const p = await this.pin(ref)
    if (p.type !== 'dir') {
      p.release()
      throw new VfsError('ENOTDIR')
    }
    return p
  }

  /** The directory holding `p` and its name there (for the calls that need a parent: readlink, link). */
  async entryOf(p: Pinned): Promise<{ parent: Pinned; name: Buffer }> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const e = this.#index.get(p.id)
      if (e !== undefined) {
        const pr = this.#walk(e.parent, this.#genInIndex(e.parent) ?? -1, 0)
        if (pr.kind === 'ok') {
          const st = lstatOrNull(fdPath(pr.pinned.fd, e.name))
          if (st !== null && this.#is(st, p.id)) return { parent: pr.pinned, name: e.name }
          pr.pinned.release()
        }
      }
      if (attempt === 0 && !(await this.#search(p.id, e))) break
    }
    throw new VfsError('ESTALE')
  }

  pinRoot(): Pinned {
    const st = fstatNow(this.rootFd)
    return { fd: this.rootFd, id: this.rootId, gen: this.rootGen, st, type: 'dir', release: () => undefined }
  }

  /** Whether a stat result is the object `id` names (same inode on the same device). */
  #is(st: BigIntStats, id: bigint): boolean {
    const { k, ino } = splitId(id)
    if (st.ino !== ino) return false
    return k === 0 ? st.dev === this.rootDev : this.#devices?.devOf(k) === st.dev
  }

  #genInIndex(id: bigint): number | undefined {
    return id === this.rootId ? this.rootGen : this.#index.get(id)?.gen
  }

  #fromEntry(e: FdEntry, st: BigIntStats): Pinned {
    let held = true
    return {
      fd: e.fd,
      id: e.key,
      gen: e.gen,
      st,
      type: fileType(st.mode),
      release: () => {
        if (held) this.#cache.release(e)
        held = false
      },
    }
  }

  /** Synchronous: fstat of a cached fd, or open(O_PATH) + fstat per component, each a few microseconds (sys.ts). */
  #walk(id: bigint, gen: number, depth: number): Walk {
    if (id === this.rootId) return gen === this.rootGen ? { kind: 'ok', pinned: this.pinRoot() } : { kind: 'stale' }
    const hit = this.#cache.acquire(id)
    if (hit !== undefined) {
      let st: BigIntStats | null = null
      try {
        st = fstatNow(hit.fd)
      } catch {
        // A cached fd that cannot be stat'ed is walked again from its parent.
      }
      // nlink 0: removed on the host while we held it; walk again to find out what the name holds now.
      if (st !== null && st.nlink > 0n) {
        if (hit.gen === gen) return { kind: 'ok', pinned: this.#fromEntry(hit, st) }
        this.#cache.release(hit)
        return { kind: 'stale' }
      }
      this.#cache.release(hit)
      void this.#cache.evict(id)
    }
    const e = this.#index.get(id)
    if (e === undefined || depth > MAX_DEPTH) return { kind: 'miss' }
    const parentGen = this.#genInIndex(e.parent)
    if (parentGen === undefined) return { kind: 'miss' }
    // The root needs no stat to serve as a parent (it is never removed under us).
    const pw = e.parent === this.rootId ? (parentGen === this.rootGen ? this.#rootAsParent : null) : this.#walk(e.parent, parentGen, depth + 1)
    if (pw?.kind !== 'ok') return { kind: 'miss' }
    const parent = pw.pinned
    let fd = -1
    try {
      if (parent.type !== 'dir') return { kind: 'miss' }
      fd = openNow(fdPath(parent.fd, e.name), PIN_FLAGS)
      const st = fstatNow(fd)
      if (!this.#is(st, id)) return { kind: 'miss' }
      const g = this.genOf(st, id)
      if (g !== gen) return { kind: 'stale' }
      const entry = this.#cache.insert(id, fd, g, 0)
      fd = -1
      return { kind: 'ok', pinned: this.#fromEntry(entry, st) }
    } catch (err) {
      if (MISS_CODES.has(codeOf(err) ?? '')) return { kind: 'miss' }
      throw toVfsError(err)
    } finally {
      if (fd >= 0) void closeQuietly(fd)
      parent.release()
    }
  }

  /** Searches the tree for `id` unless the index changed since `seen`; true when there is something to walk again. */
  #search(id: bigint, seen: unknown): Promise<boolean> {
    const run = this.#searchChain.then(async () => {
      if (this.#index.get(id) !== seen) return true
      const miss = this.#notFound.get(id)
      if (miss !== undefined && miss.until > Date.now() && miss.seen === seen) return false
      this.searches++
      const found = await this.#bfs(id)
      if (!found) {
        if (this.#notFound.size >= NOT_FOUND_MAX) this.#notFound.clear()
        this.#notFound.set(id, { until: Date.now() + NOT_FOUND_TTL_MS, seen: this.#index.get(id) })
      }
      return found
    })
    this.#searchChain = run.catch(() => undefined)
    return run
  }

  /** Breadth-first over the export (and what is mounted below it, with crossmnt), indexing everything it sees, until `id` turns up. */
  async #bfs(id: bigint): Promise<boolean> {
    const queue: bigint[] = [this.rootId]
    let visited = 0
    for (let head = 0; head < queue.length && visited < this.#searchLimit; head++) {
      const dirId = queue[head] ?? this.rootId
      const w = this.#walk(dirId, this.#genInIndex(dirId) ?? -1, 0)
      if (w.kind !== 'ok') continue
      const dir = w.pinned
      let found = false
      try {
        const names = await readdirNames(fdPath(dir.fd)).catch(() => [])
        for (let i = 0; i < names.length; i += SEARCH_BATCH) {
          const batch = names.slice(i, i + SEARCH_BATCH)
          const stats = await Promise.all(batch.map(n => lstat(fdPath(dir.fd, n)).catch(() => null)))
          for (let j = 0; j < batch.length; j++) {
            const st = stats[j]
            const name = batch[j]
            if (st === null || st === undefined || name === undefined) continue
            const seen = this.note(dirId, name, st)
            if (seen === null) continue
            if (seen.id === id) found = true
            if (fileType(st.mode) === 'dir') queue.push(seen.id)
          }
          visited += batch.length
        }
      } finally {
        dir.release()
      }
      if (found) return true
    }
    return false
  }
}
