/*
 * The engine's name cache, as the kernel's dcache: directory inode → name → the entry's inode and
 * file type, so a LOOKUP of a name found before skips the htree walk (hash, index block, leaf
 * parse) and its garbage. Only positive entries: an absent name is searched for every time, so
 * no "not there" answer can outlive the entry that makes it wrong.
 *
 * Kept exact by construction: every change to a directory's entries goes through the DirIndex
 * (add, remove, init), and the wrapper below drops the name before and after each of them,
 * whether it succeeds or not (an ENOSPC undone by hand, a damaged block met half-way). An entry is
 * filled from what the directory blocks said (only when no drop happened while it was being
 * searched for: the epoch), or by an add that succeeded, which wrote exactly that entry. A new directory (init)
 * drops whatever its inode number held before; an aborted journal drops everything (forget).
 * '.' and '..' are not kept: lookup answers '.' itself and '..' is rewritten by setParent.
 *
 * Bounded in bytes (a share of the export's cache=, fs/assemble.ts), evicting the oldest entries
 * of the oldest directory first; an idle trim lets go down to a low mark as the other caches do.
 */
import type { VfsCacheCounts } from '../../types.ts'
import { isDot, isDotDot } from '../../names.ts'
import type { DirEntryFound, DirIndex } from './parts.ts'

/**
 * What one entry is counted as beyond its name: the Map slot, the key string's header and the
 * {ino, fileType} object (about 24 + 16 + 32 bytes in V8), rounded up.
 */
export const NAME_ENTRY_BYTES = 96
/** What one directory's own Map is counted as. */
export const NAME_DIR_BYTES = 160

export class NameCache {
  readonly limit: number
  readonly #dirs = new Map<number, Map<string, DirEntryFound>>()
  #bytes = 0
  #entries = 0
  /** Bumped by every drop: a search that saw it move fills nothing. */
  #epoch = 0
  readonly #counts: VfsCacheCounts = { hits: 0, misses: 0, evictions: 0 }

  constructor(limitBytes: number) {
    this.limit = limitBytes
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#entries
  }

  get epoch(): number {
    return this.#epoch
  }

  get counts(): VfsCacheCounts {
    return this.#counts
  }

  get(dirIno: number, name: Buffer): DirEntryFound | undefined {
    const hit = this.peek(dirIno, name)
    if (hit === undefined) this.#counts.misses++
    else this.#counts.hits++
    return hit
  }

  /** As get, not counted (a fast path that falls back to find on a miss, which counts it). */
  peek(dirIno: number, name: Buffer): DirEntryFound | undefined {
    return this.#dirs.get(dirIno)?.get(name.toString('latin1'))
  }

  /** Keep name → found, unless a drop happened since `epoch` (what the search began with). */
  set(dirIno: number, name: Buffer, found: DirEntryFound, epoch: number): void {
    if (epoch !== this.#epoch) return
    const cost = NAME_ENTRY_BYTES + name.length
    if (cost + NAME_DIR_BYTES > this.limit) return
    let names = this.#dirs.get(dirIno)
    if (names === undefined) {
      names = new Map()
      this.#dirs.set(dirIno, names)
      this.#bytes += NAME_DIR_BYTES
    }
    const key = name.toString('latin1')
    if (names.has(key)) return
    names.set(key, found)
    this.#bytes += cost
    this.#entries++
    while (this.#bytes > this.limit && this.#evictOne()) this.#counts.evictions++
  }

  drop(dirIno: number, name: Buffer): void {
    this.#epoch++
    const names = this.#dirs.get(dirIno)
    if (names === undefined) return
    const key = name.toString('latin1')
    if (!names.delete(key)) return
    this.#bytes -= NAME_ENTRY_BYTES + key.length
    this.#entries--
    if (names.size === 0) this.#dropDirMap(dirIno)
  }

  dropDir(dirIno: number): void {
    this.#epoch++
    const names = this.#dirs.get(dirIno)
    if (names === undefined) return
    for (const key of names.keys()) this.#bytes -= NAME_ENTRY_BYTES + key.length
    this.#entries -= names.size
    this.#dropDirMap(dirIno)
  }

  clear(): void {
    this.#epoch++
    this.#dirs.clear()
    this.#bytes = 0
    this.#entries = 0
  }

  /** Let go of the oldest entries down to lowBytes; the bytes let go. */
  trim(lowBytes: number): number {
    const before = this.#bytes
    while (this.#bytes > lowBytes && this.#evictOne()) { /* counted as a trim, not an eviction */ }
    return before - this.#bytes
  }

  #dropDirMap(dirIno: number): void {
    this.#dirs.delete(dirIno)
    this.#bytes -= NAME_DIR_BYTES
  }

  /** The oldest entry of the oldest directory; false when empty. */
  #evictOne(): boolean {
    for (const [dirIno, names] of this.#dirs) {
      for (const key of names.keys()) {
        names.delete(key)
        this.#bytes -= NAME_ENTRY_BYTES + key.length
        this.#entries--
        break
      }
      if (names.size === 0) this.#dropDirMap(dirIno)
      return true
    }
    return false
  }
}

/**
 * The DirIndex `inner` with a name cache in front of find, kept exact by its changes.
 * storesFileType: the filetype feature (without it a dirent's type byte is written as 0).
 */
export function cachedDirIndex(inner: DirIndex, names: NameCache, storesFileType: boolean): DirIndex {
  return {
    async find(dirIno, dir, name) {
      if (isDot(name) || isDotDot(name)) return inner.find(dirIno, dir, name)
      const hit = names.get(dirIno, name)
      if (hit !== undefined) return hit
      const epoch = names.epoch
      const found = await inner.find(dirIno, dir, name)
      // Frozen: every later hit hands out this one object, which no caller may change.
      if (found !== undefined) names.set(dirIno, name, Object.freeze({ ino: found.ino, fileType: found.fileType }), epoch)
      return found
    },
    findCached(dirIno, name) {
      if (isDot(name) || isDotDot(name)) return undefined
      const hit = names.peek(dirIno, name)
      if (hit !== undefined) names.counts.hits++
      return hit
    },
    async add(h, dirIno, dir, name, ino, fileType) {
      names.drop(dirIno, name)
      try {
        await inner.add(h, dirIno, dir, name, ino, fileType)
      } catch (err) {
        names.drop(dirIno, name)
        throw err
      }
      // Added: the entry is exactly this (the type as the block stores it), so the LOOKUP that
      // follows a CREATE (each name once, as a client does after making it) is a hit too.
      names.drop(dirIno, name)
      names.set(dirIno, name, Object.freeze({ ino, fileType: storesFileType ? fileType : 0 }), names.epoch)
    },
    async remove(h, dirIno, dir, name) {
      names.drop(dirIno, name)
      try {
        await inner.remove(h, dirIno, dir, name)
      } finally {
        names.drop(dirIno, name)
      }
    },
    async init(h, dirIno, dir, parentIno) {
      names.dropDir(dirIno)
      try {
        await inner.init(h, dirIno, dir, parentIno)
      } finally {
        names.dropDir(dirIno)
      }
    },
    setParent: (h, dirIno, dir, parentIno) => inner.setParent(h, dirIno, dir, parentIno),
    isEmpty: (dirIno, dir) => inner.isEmpty(dirIno, dir),
    list: (dirIno, dir, cookie, max) => inner.list(dirIno, dir, cookie, max),
    forget() {
      names.clear()
      inner.forget?.()
    },
  }
}
