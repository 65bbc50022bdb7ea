/*
 * The lookup cache (nfs(5) lookupcache=all|positive|none): (directory,
 * name) → child handle, or "known absent". An entry is used only while the
 * directory's cached attributes are fresh, and all of a directory's entries
 * go when its attributes change (Linux drops cached LOOKUPs on a directory
 * mtime change). Our own CREATE/REMOVE/RENAME… update it directly, and their
 * wcc data keeps the directory's attributes current without a change event.
 *
 * A directory this client made itself (MKDIR) starts out known complete: it
 * was empty, and every name since added or removed through us is in the
 * cache, so with lookupcache=all a name not in it is absent without asking
 * the server (a copy into a new directory no longer sends a LOOKUP that
 * fails before each CREATE). Completeness ends with any change to the
 * directory we did not make (its attributes change: all its entries go), a
 * name we no longer know (remove()), and an entry dropped for room.
 */
import { LRUCache } from 'lru-cache'
import { ftype3 } from '../../xdr/generated/nfs3.ts'
import type { NameCacheCounters } from '../stats.ts'
import { handleKey } from './attr-cache.ts'
import type { AttrCache } from './attr-cache.ts'
import { ownCopy } from './own-copy.ts'

export type LookupCacheMode = 'all' | 'positive' | 'none'

export interface NameCacheOptions {
  mode: LookupCacheMode
  /** Directories with entries kept. */
  maxDirs: number
  /** Entries kept per directory (oldest dropped first). */
  maxNamesPerDir: number
  /** Entries kept over all directories (whole directories dropped, least recently used first; default no bound beyond the two above). */
  maxNames?: number
}

export type NameLookup = { kind: 'positive'; fh: Buffer } | { kind: 'negative' } | { kind: 'miss' }

interface DirNames {
  readonly names: Map<string, Buffer | null>
  /** Every name the directory holds is in `names` (see above). */
  complete: boolean
}

export class NameCache {
  private readonly opts: NameCacheOptions
  private readonly attrs: AttrCache
  private readonly counters: NameCacheCounters
  private readonly dirs: LRUCache<string, DirNames>
  /** Entries over all directories. */
  private names = 0

  constructor(attrs: AttrCache, opts: NameCacheOptions, counters: NameCacheCounters) {
    this.opts = opts
    this.attrs = attrs
    this.counters = counters
    this.dirs = new LRUCache({
      max: Math.max(1, opts.maxDirs),
      dispose: (d, _key, reason) => {
        if (reason !== 'set') this.names -= d.names.size
      },
    })
    attrs.onChange(ev => {
      if (ev.before.type === ftype3.NF3DIR) this.dropKey(ev.key)
    })
    attrs.onStale(fh => {
      this.forgetHandle(fh)
    })
  }

  /** Consult the cache for one component; counts a hit, negative hit or miss. */
  lookup(dir: Buffer, name: string): NameLookup {
    const d = this.opts.mode === 'none' ? undefined : this.dirs.get(handleKey(dir))
    let e = d?.names.get(name)
    if (e === undefined && d?.complete === true) e = null
    if (e === undefined || !this.attrs.isFresh(dir)) {
      this.counters.misses++
      return { kind: 'miss' }
    }
    if (e === null) {
      this.counters.negativeHits++
      return { kind: 'negative' }
    }
    this.counters.hits++
    return { kind: 'positive', fh: e }
  }

  /** The cached handle for name in dir, fresh or not, without counting (for our own REMOVE/RENAME bookkeeping). */
  peek(dir: Buffer, name: string): Buffer | undefined {
    return this.dirs.peek(handleKey(dir))?.names.get(name) ?? undefined
  }

  /** A directory we just made: empty, and every later change goes through us (lookupcache=all only). */
  markComplete(dir: Buffer): void {
    if (this.opts.mode !== 'all') return
    const key = handleKey(dir)
    const d = this.dirs.get(key)
    if (d === undefined) this.dirs.set(key, { names: new Map(), complete: true })
    else if (d.names.size === 0) d.complete = true
  }

  /** Whether dir is known complete (for tests and stats). */
  isComplete(dir: Buffer): boolean {
    return this.dirs.peek(handleKey(dir))?.complete === true
  }

  /** name in dir is fh (LOOKUP, CREATE, MKDIR, SYMLINK, LINK, RENAME target, READDIRPLUS). */
  addPositive(dir: Buffer, name: string, fh: Buffer): void {
    this.set(dir, name, ownCopy(fh))
  }

  /**
   * name in dir does not exist (LOOKUP NOENT, REMOVE, RMDIR, RENAME source).
   * In a directory known complete a name not held is absent already: the
   * name goes instead of staying as a negative entry. rsync leaves one
   * temporary name per file it renames into place; kept, they filled a
   * directory's bound at half the files and ended its completeness there
   * (then two LOOKUPs per file: 10,000 files into one directory, 3,615).
   */
  addNegative(dir: Buffer, name: string): void {
    if (this.opts.mode !== 'all') {
      this.remove(dir, name)
      return
    }
    const d = this.dirs.get(handleKey(dir))
    if (d?.complete === true) {
      if (d.names.delete(name)) this.names--
      return
    }
    this.set(dir, name, null)
  }

  /** Forget what name in dir is: it may exist or not, so dir is no longer known complete. */
  remove(dir: Buffer, name: string): void {
    const d = this.dirs.peek(handleKey(dir))
    if (d === undefined) return
    if (d.names.delete(name)) this.names--
    d.complete = false
  }

  /** Entries cached over all directories. */
  get size(): number {
    return this.names
  }

  /** Forget every entry of a directory (its attributes changed, or a walk met ESTALE). */
  dropDir(dir: Buffer): void {
    this.dropKey(handleKey(dir))
  }

  clear(): void {
    this.dirs.clear()
  }

  /**
   * The server called fh STALE (another client removed it): every name
   * cached as fh goes, and fh's own entries, so the next lookup of such a
   * name asks the server, as Linux's LOOKUP_REVAL walk after ESTALE does.
   * A scan of every cached name: STALE is rare, and a reverse index would
   * cost every entry.
   */
  forgetHandle(fh: Buffer): void {
    this.dropKey(handleKey(fh))
    for (const d of this.dirs.values()) {
      for (const [name, v] of d.names) {
        if (v === null || !v.equals(fh)) continue
        d.names.delete(name)
        this.names--
        d.complete = false
      }
    }
  }

  private dropKey(key: string): void {
    if (this.dirs.delete(key)) this.counters.dirDrops++
  }

  private set(dir: Buffer, name: string, value: Buffer | null): void {
    if (this.opts.mode === 'none') return
    const key = handleKey(dir)
    let d = this.dirs.get(key)
    if (d === undefined) {
      d = { names: new Map(), complete: false }
      this.dirs.set(key, d)
    }
    const names = d.names
    if (names.delete(name)) this.names--
    names.set(name, value)
    this.names++
    if (names.size > this.opts.maxNamesPerDir) {
      const oldest = names.keys().next()
      if (oldest.done !== true && names.delete(oldest.value)) this.names--
      d.complete = false
    }
    const max = this.opts.maxNames ?? Infinity
    // Whole directories go, least recently used first; never the one just added to.
    while (this.names > max && this.dirs.size > 1) {
      const lru = this.dirs.rkeys().next().value
      if (lru === undefined || lru === key) break
      this.dirs.delete(lru)
    }
  }
}
