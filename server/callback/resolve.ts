/*
 * Host names of outbound calls to addresses, a few at a time. getaddrinfo
 * runs in libuv's thread pool (four threads by default), the pool that also
 * does the local backend's file work, and cannot be cancelled: a lookup
 * whose DNS server is slow holds a thread for seconds. The status monitor
 * resolves every monitored name at each restart notification and again at
 * each retry; a run superseded by the next (SM_SIMU_CRASH) left its lookups
 * running while the next started more, so the lookups in flight grew
 * without bound (the dispatch fuzzer saw 1,947 pending after a million
 * calls, bench/fuzz-results.md). Here at most MAX_LOOKUPS run at once; the
 * rest wait in a bounded queue, and a waiting caller whose signal fires
 * leaves it without ever starting its lookup.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { PeerCallError } from './errors.ts'

/** Lookups in the thread pool at once: half of libuv's default four threads, so file work always has the rest. */
export const MAX_LOOKUPS = 2
/** Callers waiting for a lookup slot; more fail at once (CALL_UNREACHABLE). */
export const MAX_WAITING = 256

export interface Resolved {
  address: string
  family: 4 | 6
}

export type LookupFn = (host: string) => Promise<{ address: string; family: number }>

export class NameResolver {
  private running = 0
  private readonly waiting: (() => void)[] = []
  private readonly lookupFn: LookupFn
  private readonly max: number
  private readonly maxWaiting: number

  constructor(o: { lookup?: LookupFn; max?: number; maxWaiting?: number } = {}) {
    this.lookupFn = o.lookup ?? ((host) => dnsLookup(host))
    this.max = o.max ?? MAX_LOOKUPS
    this.maxWaiting = o.maxWaiting ?? MAX_WAITING
  }

  /** Lookups running now and callers waiting for one (for tests and diagnostics). */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length }
  }

  /** host's address: an IP literal as it is, a name through getaddrinfo. Throws PeerCallError. */
  async resolve(host: string, signal?: AbortSignal): Promise<Resolved> {
    const literal = isIP(host)
    if (literal !== 0) return { address: host, family: literal === 6 ? 6 : 4 }
    await this.slot(host, signal)
    try {
      const found = await this.lookupFn(host)
      return { address: found.address, family: found.family === 6 ? 6 : 4 }
    } catch (err) {
      throw new PeerCallError('CALL_UNREACHABLE', `cannot resolve ${host}: ${(err as Error).message}`, { cause: err })
    } finally {
      this.release()
    }
  }

  private slot(host: string, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(new PeerCallError('CALL_ABORTED', `lookup of ${host} aborted`))
    if (this.running < this.max) {
      this.running++
      return Promise.resolve()
    }
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(new PeerCallError('CALL_UNREACHABLE', `cannot resolve ${host}: ${String(this.maxWaiting)} name lookups already waiting`))
    }
    return new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', onAbort)
        this.running++
        resolve()
      }
      const onAbort = (): void => {
        const at = this.waiting.indexOf(go)
        if (at !== -1) this.waiting.splice(at, 1)
        reject(new PeerCallError('CALL_ABORTED', `lookup of ${host} aborted`))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(go)
    })
  }

  private release(): void {
    this.running--
    this.waiting.shift()?.()
  }
}

/** The process's resolver, shared by every outbound call. */
export const hostResolver = new NameResolver()
