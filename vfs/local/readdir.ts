/*
 * READDIR over host directories (RFC 1813 §3.3.16) without rescanning the
 * directory for every page. An entry's cookie is a 63-bit hash of its name
 * (`.` is 1, `..` is 2, hashes are >= 3), so a cookie means the same
 * position however the directory changes and across restarts: a listing
 * resumed after changes neither repeats nor skips surviving entries.
 *
 * A directory is read once into a snapshot sorted by hash, cached (bounded
 * in total entries) and reused while the directory's mtime and ctime (ns)
 * are unchanged; a page is a binary search for the first hash above the
 * cookie. Entries whose hashes collide are returned in the same page (the
 * page may exceed `max` by the size of the collision group).
 *
 * Timestamps come from a coarse kernel clock: a change made in the same
 * tick after the snapshot was read leaves mtime unchanged. A snapshot read
 * within RACY_MS of the directory's last change is therefore read again
 * once that window has passed (as git does with "racily clean" entries).
 */
import type { BigIntStats } from 'node:fs'
import type { DirEntry, DirPage } from '../types.ts'
import type { NameAttrCache } from './attr-cache.ts'
import type { Pinned, Resolver } from './resolver.ts'
import { childPath, dirPrefix, fdPath, lstatOrNull, readdirNames, toVfsError } from './sys.ts'
import { toAttr } from './attr.ts'

export const RACY_MS = 50
/**
 * fileid of an entry that has no id (a mount point we do not cross, an inode number that does
 * not fit): marked with bit 63, so it never equals an id of the root's device. It has no handle.
 */
const FOREIGN = 1n << 63n

interface Snapshot {
  readonly id: bigint
  readonly gen: number
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint
  readonly builtAt: number
  readonly hashes: BigUint64Array
  readonly names: Buffer[]
}

function fnv32(name: Buffer, basis: number, prime: number): number {
  let h = basis
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ (name[i] ?? 0), prime)
  // A final avalanche, so short names spread over the whole range.
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  h ^= h >>> 12
  return h >>> 0
}

interface Keyed {
  readonly name: Buffer
  /** The cookie's high 31 and low 32 bits, as numbers: sorting by them is sorting by the cookie, without BigInt compares. */
  readonly hi: number
  readonly lo: number
}

function keyed(name: Buffer): Keyed {
  const hi = fnv32(name, 0x811c9dc5, 0x01000193) & 0x7fffffff
  const lo = fnv32(name, 0x9747b28c, 0x5bd1e995)
  // Never 0, 1 or 2 (no carry: only when hi is 0 and lo < 3).
  return { name, hi, lo: hi === 0 && lo < 3 ? lo + 3 : lo }
}

/** The cookie of a name: two independent 32-bit hashes folded into 63 bits, never 0, 1 or 2. */
export function nameCookie(name: Buffer): bigint {
  const k = keyed(name)
  return (BigInt(k.hi) << 32n) | BigInt(k.lo)
}

/** When the directory last changed (its later of mtime and ctime), in ms. */
export function changedMs(st: BigIntStats): number {
  const t = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs
  return Number(t / 1_000_000n)
}

export class DirSnapshots {
  readonly #map = new Map<bigint, Snapshot>()
  readonly #building = new Map<bigint, Promise<Snapshot>>()
  readonly #maxEntries: number
  #entries = 0
  /** Directory reads so far (tests check a big listing reads the directory a bounded number of times). */
  builds = 0

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries
  }

  async get(dir: Pinned): Promise<Snapshot> {
    const cur = this.#map.get(dir.id)
    const st = dir.st
    if (cur?.gen === dir.gen && cur.mtimeNs === st.mtimeNs && cur.ctimeNs === st.ctimeNs) {
      const changed = changedMs(st)
      const racy = cur.builtAt < changed + RACY_MS
      if (!racy || Date.now() < changed + RACY_MS) {
        this.#map.delete(dir.id)
        this.#map.set(dir.id, cur)
        return cur
      }
    }
    const pending = this.#building.get(dir.id)
    if (pending !== undefined) return pending
    const p = this.#build(dir).finally(() => this.#building.delete(dir.id))
    this.#building.set(dir.id, p)
    return p
  }

  drop(id: bigint): void {
    const cur = this.#map.get(id)
    if (cur === undefined) return
    this.#map.delete(id)
    this.#entries -= cur.names.length
  }

  async #build(dir: Pinned): Promise<Snapshot> {
    const builtAt = Date.now()
    let raw: Buffer[]
    try {
      raw = await readdirNames(fdPath(dir.fd))
    } catch (err) {
      throw toVfsError(err)
    }
    this.builds++
    const sorted = raw.map(keyed)
    sorted.sort((a, b) => a.hi - b.hi || a.lo - b.lo)
    const snap: Snapshot = {
      id: dir.id,
      gen: dir.gen,
      mtimeNs: dir.st.mtimeNs,
      ctimeNs: dir.st.ctimeNs,
      builtAt,
      hashes: BigUint64Array.from(sorted, k => (BigInt(k.hi) << 32n) | BigInt(k.lo)),
      names: sorted.map(k => k.name),
    }
    this.drop(dir.id)
    this.#map.set(dir.id, snap)
    this.#entries += snap.names.length
    for (const [id, s] of this.#map) {
      if (this.#entries <= this.#maxEntries || id === dir.id) break
      this.drop(s.id)
    }
    return snap
  }
}

/** Index of the first hash greater than `cookie`. */
function upperBound(hashes: BigUint64Array, cookie: bigint): number {
  let lo = 0
  let hi = hashes.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((hashes[mid] ?? 0n) <= cookie) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** `..` of the export root is the root; below it, the directory's real parent (from a mounted root: the mount point's). */
function dotDot(res: Resolver, dir: Pinned): DirEntry {
  const name = Buffer.from('..')
  if (dir.id === res.rootId) return { name, fileid: dir.id, cookie: 2n, ref: { id: dir.id, gen: dir.gen } }
  const up = lstatOrNull(fdPath(dir.fd, name)) ?? dir.st
  const id = up === dir.st ? dir.id : res.idOf(up)
  if (id === null) return { name, fileid: up.ino | FOREIGN, cookie: 2n }
  return { name, fileid: id, cookie: 2n, ref: { id, gen: up === dir.st ? dir.gen : res.genOf(up, id) } }
}

export async function readdirPage(res: Resolver, snaps: DirSnapshots, names: NameAttrCache, dir: Pinned, cookie: bigint, max: number): Promise<DirPage> {
  // A page always holds at least one entry, or a client looping on empty non-eof pages never ends.
  const limit = Math.max(1, Math.floor(max))
  const entries: DirEntry[] = []
  if (cookie === 0n) entries.push({ name: Buffer.from('.'), fileid: dir.id, cookie: 1n, ref: { id: dir.id, gen: dir.gen } })
  if (cookie <= 1n) {
    if (entries.length === limit) return { entries, eof: false }
    entries.push(dotDot(res, dir))
  }
  const snap = await snaps.get(dir)
  const n = snap.names.length
  let i = cookie < 3n ? 0 : upperBound(snap.hashes, cookie)
  // One lstat per entry not in the name cache (attr-cache.ts), synchronously (sys.ts: a few
  // microseconds each, where a thread-pool trip each, or a batch of them, costs more).
  const prefix = dirPrefix(dir.fd)
  const now = Date.now()
  const cached = names.lookupIn(dir.id, dir.st, now)
  while (i < n && (entries.length < limit || snap.hashes[i] === snap.hashes[i - 1])) {
    const name = snap.names[i]
    const h = snap.hashes[i]
    i++
    if (name === undefined || h === undefined) continue
    const hit = cached?.(name)
    if (hit !== undefined) {
      entries.push({ name, fileid: hit.id, cookie: h, ref: { id: hit.id, gen: hit.gen }, attr: hit.attr })
      continue
    }
    const st = lstatOrNull(childPath(prefix, name))
    // Gone since the snapshot: removed entries are simply not listed.
    if (st === null) continue
    const seen = res.note(dir.id, name, st)
    if (seen === null) {
      entries.push({ name, fileid: st.ino | FOREIGN, cookie: h })
      continue
    }
    const attr = toAttr(st, seen.gen, seen.id)
    names.put(dir.id, dir.st, name, { id: seen.id, gen: seen.gen, attr }, now)
    entries.push({ name, fileid: seen.id, cookie: h, ref: { id: seen.id, gen: seen.gen }, attr })
  }
  return { entries, eof: i >= n }
}
