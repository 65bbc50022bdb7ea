/*
 * READDIR cookies that are the same on every node (server/replication/README.md
 * "One id space"): a client that resumes a listing on the new primary after
 * a takeover must land where it left off (RFC 1813 §3.3.16: the cookie is
 * the server's, and a client may hold it across requests).
 *
 * cookie = a 64-bit hash of the name alone (FNV-1a 64, then the splitmix64
 * finalizer so short names spread), shifted to 63 bits, moved to >= 3:
 * `.` is 1 and `..` is 2. A listing is the backend's whole directory sorted
 * by cookie; names with the same cookie sort by their bytes and are returned
 * in the same page, so resuming after that cookie skips none of them. A
 * page resumes after `cookie` by binary search, so a removal between pages
 * neither repeats nor skips surviving entries.
 *
 * Listings are cached per directory (LRU, bounded by entries over all
 * directories) and dropped by invalidate() when the layer changes the
 * directory; a listing read while the directory changed is used once, not
 * kept.
 */
const FNV_OFFSET_HI = 0xcbf29ce4
const FNV_OFFSET_LO = 0x84222325
/** The FNV 64-bit prime is 2^40 + 0x1b3. */
const FNV_PRIME_LO = 0x1b3
const MASK64 = (1n << 64n) - 1n
export const DOT_COOKIE = 1n
export const DOTDOT_COOKIE = 2n
const FIRST_COOKIE = 3n

/** FNV-1a 64 of `name`, in 32-bit halves (no BigInt per byte). */
export function fnv1a64(name: Buffer): bigint {
  let hi = FNV_OFFSET_HI
  let lo = FNV_OFFSET_LO
  for (const byte of name) {
    lo = (lo ^ byte) >>> 0
    // (hi:lo) * (2^40 + 0x1b3) mod 2^64; lo * 0x1b3 < 2^41, exact in a double.
    const l = lo * FNV_PRIME_LO
    const carry = Math.floor(l / 2 ** 32)
    const h = hi * FNV_PRIME_LO + carry + ((lo << 8) >>> 0)
    lo = l >>> 0
    hi = h % 2 ** 32
  }
  return (BigInt(hi) << 32n) | BigInt(lo)
}

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64
  return z ^ (z >> 31n)
}

/** The cookie of an entry named `name` (not `.` or `..`): in [3, 2^63). */
export function nameCookie(name: Buffer): bigint {
  const c = mix64(fnv1a64(name)) >> 1n
  return c < FIRST_COOKIE ? c + FIRST_COOKIE : c
}

export interface ListedEntry {
  readonly name: Buffer
  readonly cookie: bigint
  /** The backend's fileid and ref (when it gave one) of the entry. */
  readonly localId: bigint
  readonly localRef: { id: bigint; gen: number } | undefined
}

/** Sorted by cookie, then by name bytes. */
export type Listing = readonly ListedEntry[]

export function compareEntries(a: ListedEntry, b: ListedEntry): number {
  if (a.cookie !== b.cookie) return a.cookie < b.cookie ? -1 : 1
  return Buffer.compare(a.name, b.name)
}

/** Index of the first entry with a cookie above `cookie`. */
function firstAfter(list: Listing, cookie: bigint): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((list[mid]?.cookie ?? 0n) <= cookie) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Up to `max` entries after `cookie` (more when the last one's cookie is shared), and whether they end the listing. */
export function pageOf(list: Listing, cookie: bigint, max: number): { entries: ListedEntry[]; eof: boolean } {
  const start = firstAfter(list, cookie)
  let end = Math.min(list.length, start + Math.max(1, Math.floor(max)))
  const last = list[end - 1]
  while (last !== undefined && end < list.length && list[end]?.cookie === last.cookie) end++
  return { entries: list.slice(start, end), eof: end >= list.length }
}

/** Cached listings by directory (key: the directory's vid id). */
export class ListingCache {
  readonly #max: number
  readonly #map = new Map<bigint, Listing>()
  /** Listings being read; invalidate() marks one stale, so it is used by its callers but not kept. */
  readonly #building = new Map<bigint, { stale: boolean; list: Promise<Listing> }>()
  #entries = 0

  constructor(maxEntries: number) {
    this.#max = maxEntries
  }

  get entries(): number {
    return this.#entries
  }

  /** The cached listing of `dir`, or the one `read` gives (concurrent callers share one read). */
  async load(dir: bigint, read: () => Promise<Listing>): Promise<Listing> {
    const hit = this.#map.get(dir)
    if (hit !== undefined) {
      // Most recently used last.
      this.#map.delete(dir)
      this.#map.set(dir, hit)
      return hit
    }
    let b = this.#building.get(dir)
    if (b === undefined) {
      const built = { stale: false, list: read() }
      b = built
      this.#building.set(dir, built)
      const done = (): void => {
        if (this.#building.get(dir) === built) this.#building.delete(dir)
      }
      built.list.then((list) => {
        done()
        if (!built.stale) this.#store(dir, list)
      }, done)
    }
    return b.list
  }

  invalidate(dir: bigint): void {
    const b = this.#building.get(dir)
    if (b !== undefined) {
      b.stale = true
      this.#building.delete(dir)
    }
    this.#remove(dir)
  }

  #store(dir: bigint, list: Listing): void {
    if (list.length > this.#max) return
    this.#remove(dir)
    this.#map.set(dir, list)
    this.#entries += list.length
    for (const [k, l] of this.#map) {
      if (this.#entries <= this.#max) break
      this.#map.delete(k)
      this.#entries -= l.length
    }
  }

  #remove(dir: bigint): void {
    const l = this.#map.get(dir)
    if (l === undefined) return
    this.#map.delete(dir)
    this.#entries -= l.length
  }
}
