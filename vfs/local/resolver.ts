/*
 * FileRef -> an O_PATH fd on exactly that object, inside the export.
 *
 * A ref is (inode, generation). Resolution: a cached O_PATH fd for the
 * inode (still linked, same generation), else walk the index's parent links
 * to the root and open each component from its parent's fd with O_NOFOLLOW
 * (never through a symlink, never above the root: the walk starts at the
 * root fd and names never contain `/` and are never `.` or `..`). If the
 * index has no entry, or the path it gives now holds another inode (the tree
 * changed on the host), a breadth-first search of the export (bounded, not
 * crossing devices) finds the inode and repairs the index. The same inode
 * with another generation is a reused inode number: ESTALE, never the other
 * file.
 */
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import type { FileRef, FileType } from '../types.ts'
import { fileType, genFromBirth, randomGen } from './attr.ts'
import type { FdCache, FdEntry } from './fd-cache.ts'
import type { HandleIndex } from './handle-index.ts'
import { closeQuietly, codeOf, fdPath, fstat, lstat, open, PIN_FLAGS, readdirNames, toVfsError } from './sys.ts'

export interface Pinned {
  readonly fd: number
  readonly ino: bigint
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
  readonly rootIno: bigint
  readonly rootDev: bigint
  readonly rootGen: number
  readonly #index: HandleIndex
  readonly #cache: FdCache
  readonly #searchLimit: number
  readonly #notFound = new Map<bigint, number>()
  #searchChain: Promise<unknown> = Promise.resolve()
  searches = 0

  constructor(o: ResolverOptions) {
    this.rootFd = o.rootFd
    this.rootIno = o.rootSt.ino
    this.rootDev = o.rootSt.dev
    this.rootGen = o.rootGen
    this.#index = o.index
    this.#cache = o.cache
    this.#searchLimit = o.searchLimit
  }

  /** The generation of a stat result: from the birth time, else the one the index recorded, else a new one. */
  genOf(st: BigIntStats): number {
    if (st.ino === this.rootIno && st.dev === this.rootDev) return this.rootGen
    return genFromBirth(st) ?? this.#index.get(st.ino)?.gen ?? randomGen()
  }

  /** Records a child seen by name in `dir`; returns its generation. */
  note(dirIno: bigint, name: Buffer, st: BigIntStats): number {
    const gen = this.genOf(st)
    if (st.dev === this.rootDev) this.#index.set(st.ino, dirIno, name, gen)
    return gen
  }

  /** The object is gone (its last link removed through us). */
  forget(ino: bigint): void {
    this.#index.delete(ino)
    this.#cache.evict(ino)
  }

  async pin(ref: FileRef): Promise<Pinned> {
    let w = await this.#walk(ref.id, ref.gen, 0)
    if (w.kind === 'miss' && (await this.#search(ref.id, this.#index.get(ref.id)))) w = await this.#walk(ref.id, ref.gen, 0)
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
      const e = this.#index.get(p.ino)
      if (e !== undefined) {
        const pr = await this.#walk(e.parent, this.#genInIndex(e.parent) ?? -1, 0)
        if (pr.kind === 'ok') {
          const st = await lstat(fdPath(pr.pinned.fd, e.name)).catch(() => null)
          if (st?.ino === p.ino) return { parent: pr.pinned, name: e.name }
          pr.pinned.release()
        }
      }
      if (attempt === 0 && !(await this.#search(p.ino, e))) break
    }
    throw new VfsError('ESTALE')
  }

  async pinRoot(): Promise<Pinned> {
    const st = await fstat(this.rootFd)
    return { fd: this.rootFd, ino: this.rootIno, gen: this.rootGen, st, type: 'dir', release: () => undefined }
  }

  #genInIndex(ino: bigint): number | undefined {
    return ino === this.rootIno ? this.rootGen : this.#index.get(ino)?.gen
  }

  #fromEntry(e: FdEntry, st: BigIntStats): Pinned {
    let held = true
    return {
      fd: e.fd,
      ino: e.key,
      gen: e.gen,
      st,
      type: fileType(st.mode),
      release: () => {
        if (held) this.#cache.release(e)
        held = false
      },
    }
  }

  async #walk(id: bigint, gen: number, depth: number): Promise<Walk> {
    if (id === this.rootIno) return gen === this.rootGen ? { kind: 'ok', pinned: await this.pinRoot() } : { kind: 'stale' }
    const hit = this.#cache.acquire(id)
    if (hit !== undefined) {
      const st = await fstat(hit.fd).catch(() => null)
      // nlink 0: removed on the host while we held it; walk again to find out what the name holds now.
      if (st !== null && st.nlink > 0n) {
        if (hit.gen === gen) return { kind: 'ok', pinned: this.#fromEntry(hit, st) }
        this.#cache.release(hit)
        return { kind: 'stale' }
      }
      this.#cache.release(hit)
      this.#cache.evict(id)
    }
    const e = this.#index.get(id)
    if (e === undefined || depth > MAX_DEPTH) return { kind: 'miss' }
    const parentGen = this.#genInIndex(e.parent)
    if (parentGen === undefined) return { kind: 'miss' }
    const pw = await this.#walk(e.parent, parentGen, depth + 1)
    if (pw.kind !== 'ok') return { kind: 'miss' }
    const parent = pw.pinned
    let fd = -1
    try {
      if (parent.type !== 'dir') return { kind: 'miss' }
      fd = await open(fdPath(parent.fd, e.name), PIN_FLAGS)
      const st = await fstat(fd)
      if (st.ino !== id || st.dev !== this.rootDev) return { kind: 'miss' }
      const g = this.genOf(st)
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
      const until = this.#notFound.get(id)
      if (until !== undefined && until > Date.now()) return false
      this.searches++
      const found = await this.#bfs(id)
      if (!found) {
        if (this.#notFound.size >= NOT_FOUND_MAX) this.#notFound.clear()
        this.#notFound.set(id, Date.now() + NOT_FOUND_TTL_MS)
      }
      return found
    })
    this.#searchChain = run.catch(() => undefined)
    return run
  }

  /** Breadth-first over the export, indexing everything it sees, until `id` turns up. */
  async #bfs(id: bigint): Promise<boolean> {
    const queue: bigint[] = [this.rootIno]
    let visited = 0
    for (let head = 0; head < queue.length && visited < this.#searchLimit; head++) {
      const dirIno = queue[head] ?? this.rootIno
      const w = await this.#walk(dirIno, this.#genInIndex(dirIno) ?? -1, 0)
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
            if (st === null || st === undefined || name === undefined || st.dev !== this.rootDev) continue
            this.note(dirIno, name, st)
            if (st.ino === id) found = true
            if (fileType(st.mode) === 'dir') queue.push(st.ino)
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
