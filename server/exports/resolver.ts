import { lookup, lookupService } from 'node:dns/promises'
import { LRUCache } from 'lru-cache'

/** Name service calls the export matcher needs; injectable for tests. */
export interface HostResolver {
  /** Host names of an address (reverse lookup); [] when it has none. */
  reverse(address: string): Promise<string[]>
  /** Addresses of a host name (forward lookup); [] when it has none. */
  lookup(name: string): Promise<string[]>
}

/** Give up on a lookup after this long: a dead resolver must not hang MNT. */
const LOOKUP_TIMEOUT_MS = 2000
const CACHE_TTL_MS = 60_000
const CACHE_MAX = 4096

/**
 * The system resolver (getaddrinfo/getnameinfo, so /etc/hosts counts), each
 * call bounded by a timeout. Failures and timeouts read as "no names".
 */
export const systemResolver: HostResolver = {
  async reverse(address) {
    const res = await withTimeout(lookupService(address, 0), LOOKUP_TIMEOUT_MS)
    // getnameinfo returns the numeric address when there is no name.
    return res === null || res.hostname === address ? [] : [res.hostname]
  },
  async lookup(name) {
    const res = await withTimeout(lookup(name, { all: true }), LOOKUP_TIMEOUT_MS)
    return res === null ? [] : res.map((a) => a.address)
  },
}

/** `p`'s value, or null when it rejects or takes longer than `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(resolve, ms, null)
  })
  try {
    return await Promise.race([p.catch(() => null), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Caches another resolver's answers for 60 s, failures included, and shares
 * one in-flight lookup between concurrent callers.
 */
export class CachingResolver implements HostResolver {
  private readonly inner: HostResolver
  private readonly cache = new LRUCache<string, Promise<string[]>>({ max: CACHE_MAX, ttl: CACHE_TTL_MS })

  constructor(inner: HostResolver) {
    this.inner = inner
  }

  reverse(address: string): Promise<string[]> {
    return this.cached(`r:${address}`, () => this.inner.reverse(address))
  }

  lookup(name: string): Promise<string[]> {
    return this.cached(`f:${name.toLowerCase()}`, () => this.inner.lookup(name))
  }

  private cached(key: string, load: () => Promise<string[]>): Promise<string[]> {
    let p = this.cache.get(key)
    if (p === undefined) {
      p = load().catch(() => [])
      this.cache.set(key, p)
    }
    return p
  }
}
