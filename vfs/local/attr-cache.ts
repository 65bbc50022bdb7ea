/*
 * What a name in a directory held a moment ago, with its attributes, for
 * READDIRPLUS: one lstat per entry through `/proc/self/fd/<dir>/<name>`
 * costs 4-7 us (the kernel walks /proc for each; Node has no fstatat), the
 * largest part of a READDIRPLUS page. LOOKUP and READDIRPLUS fill it;
 * READDIRPLUS reads it. An entry is used only
 *  - for 1 s (`ttlMs`) after the lstat that filled it: a change made on the
 *    host to the file itself (chmod, a write) may go unseen for that long
 *    (README, limits). NFS clients cache attributes for 3-60 s anyway;
 *  - while the directory's mtime and ctime (ns) are the ones seen at the
 *    fill, so names added, removed or renamed on the host are seen at once
 *    (an entry is not filled within RACY_MS of the directory's last change:
 *    the coarse kernel clock could hide a change made in the same tick);
 *  - when nothing changed the object through us since (changed(id): WRITE,
 *    SETATTR, and every object a namespace operation touches).
 */
import type { BigIntStats } from 'node:fs'
import type { Attr } from '../types.ts'
import { changedMs, RACY_MS } from './readdir.ts'

export interface CachedName {
  readonly id: bigint
  readonly gen: number
  readonly attr: Attr
}

interface Entry extends CachedName {
  readonly at: number
  readonly seq: number
  readonly dirMtime: bigint
  readonly dirCtime: bigint
}

export class NameAttrCache {
  readonly #ttlMs: number
  readonly #max: number
  /** Directory id -> name (latin1) -> entry. */
  readonly #dirs = new Map<bigint, Map<string, Entry>>()
  #size = 0
  /** Our own last change of an object; dropped once older than the ttl (every entry filled before it has expired). */
  readonly #changed = new Map<bigint, { seq: number; at: number }>()
  #seq = 0
  hits = 0

  constructor(ttlMs: number, max: number) {
    this.#ttlMs = ttlMs
    this.#max = max
  }

  get size(): number {
    return this.#size
  }

  get(dirId: bigint, dirSt: BigIntStats, name: Buffer, now = Date.now()): CachedName | undefined {
    return this.lookupIn(dirId, dirSt, now)?.(name)
  }

  /** A lookup of names in one directory (for a READDIRPLUS page), or null when nothing of it is cached. */
  lookupIn(dirId: bigint, dirSt: BigIntStats, now = Date.now()): ((name: Buffer) => CachedName | undefined) | null {
    const names = this.#dirs.get(dirId)
    if (names === undefined) return null
    return (name) => {
      const key = name.toString('latin1')
      const e = names.get(key)
      if (e === undefined) return undefined
      if (now - e.at > this.#ttlMs || e.dirMtime !== dirSt.mtimeNs || e.dirCtime !== dirSt.ctimeNs || (this.#changed.get(e.id)?.seq ?? 0) >= e.seq) {
        // (The map may have been cleared out from under this page: count only what leaves the live one.)
        if (names.delete(key) && this.#dirs.get(dirId) === names) this.#size--
        return undefined
      }
      this.hits++
      return e
    }
  }

  /** Records what `name` in the directory (stat `dirSt`, taken before the name's lstat) holds now. */
  put(dirId: bigint, dirSt: BigIntStats, name: Buffer, v: CachedName, now = Date.now()): void {
    if (this.#ttlMs <= 0 || now < changedMs(dirSt) + RACY_MS) return
    // Full: start over (entries live a second; a full cache is one being filled faster than that).
    if (this.#size >= this.#max) this.clear()
    let names = this.#dirs.get(dirId)
    if (names === undefined) {
      names = new Map()
      this.#dirs.set(dirId, names)
    }
    const key = name.toString('latin1')
    const size = names.size
    names.set(key, { id: v.id, gen: v.gen, attr: v.attr, at: now, seq: ++this.#seq, dirMtime: dirSt.mtimeNs, dirCtime: dirSt.ctimeNs })
    this.#size += names.size - size
  }

  /** The object `id` changed through us: what was cached about it before is not used. */
  changed(id: bigint, now = Date.now()): void {
    if (this.#size === 0 && this.#changed.size === 0) return
    this.#changed.delete(id)
    this.#changed.set(id, { seq: ++this.#seq, at: now })
  }

  /** Drops expired entries and change records. */
  sweep(now = Date.now()): void {
    for (const [dirId, names] of this.#dirs) {
      for (const [key, e] of names) {
        if (now - e.at <= this.#ttlMs) continue
        names.delete(key)
        this.#size--
      }
      if (names.size === 0) this.#dirs.delete(dirId)
    }
    // In time order (changed() re-inserts): stop at the first recent one.
    for (const [id, c] of this.#changed) {
      if (now - c.at <= this.#ttlMs) break
      this.#changed.delete(id)
    }
  }

  clear(): void {
    this.#dirs.clear()
    this.#size = 0
  }
}
