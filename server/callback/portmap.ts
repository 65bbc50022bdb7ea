/*
 * Finding a peer's program through its portmapper (RFC 1833 §3.2,
 * PMAPPROC_GETPORT), as a lock manager finds a client's NLM or NSM. The
 * portmapper's port is a parameter (111 in production; tests run several
 * hosts on loopback addresses, each with a portmapper on a port of its own).
 * Answers are cached briefly: a burst of GRANTED callbacks to one client
 * asks once. A call to a cached port that fails forgets it, so a client
 * that restarted on another port is found again on the next try.
 */
import type { Codec } from '../../xdr/runtime/codec.ts'
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { callPeer, sendOneWay } from './caller.ts'
import type { CallOptions, SendOptions } from './caller.ts'
import { PeerCallError } from './errors.ts'

const PMAP2 = PMAP_PROG.versions.PMAP_VERS

export interface PortCacheOptions {
  /** How long an answer is used (default 30 s). */
  ttlMs?: number
  /** Entries kept; the oldest goes first (default 4096). */
  maxEntries?: number
  now?: () => number
}

export class PortCache {
  private readonly ttlMs: number
  private readonly maxEntries: number
  private readonly now: () => number
  private readonly entries = new Map<string, { port: number; expires: number }>()

  constructor(opts: PortCacheOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 30_000
    this.maxEntries = opts.maxEntries ?? 4096
    this.now = opts.now ?? (() => performance.now())
  }

  static key(host: string, pmapPort: number, prog: number, vers: number, transport: 'udp' | 'tcp'): string {
    return `${host}|${String(pmapPort)}|${String(prog)}|${String(vers)}|${transport}`
  }

  get(key: string): number | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    if (e.expires > this.now()) return e.port
    this.entries.delete(key)
    return undefined
  }

  set(key: string, port: number): void {
    this.entries.delete(key)
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
    this.entries.set(key, { port, expires: this.now() + this.ttlMs })
  }

  forget(key: string): void {
    this.entries.delete(key)
  }

  get size(): number {
    return this.entries.size
  }
}

/** The cache the functions below use unless given another. */
export const defaultPortCache = new PortCache()

export interface PeerPortOptions {
  /** For the GETPORT call (default 2000 ms per try, retried as callPeer does over UDP). */
  timeoutMs?: number
  retries?: number
  /** null: no caching. */
  cache?: PortCache | null
  localAddress?: string
  signal?: AbortSignal
}

/**
 * The port of (prog, vers) over `transport` on `host`, asked of the
 * portmapper at host:pmapPort over UDP. Throws PeerCallError:
 * CALL_NOT_REGISTERED when the answer is 0, else the GETPORT call's failure.
 */
export async function peerPort(host: string, pmapPort: number, prog: number, vers: number, transport: 'udp' | 'tcp', opts: PeerPortOptions = {}): Promise<number> {
  const cache = opts.cache === undefined ? defaultPortCache : opts.cache
  const key = PortCache.key(host, pmapPort, prog, vers, transport)
  const cached = cache?.get(key)
  if (cached !== undefined) return cached
  const port = await callPeer(
    { host, port: pmapPort, transport: 'udp', prog: PMAP_PROG.prog, vers: PMAP2.vers, proc: PMAP2.procs.PMAPPROC_GETPORT.proc },
    PMAP2.procs.PMAPPROC_GETPORT.args,
    { prog, vers, prot: transport === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, port: 0 },
    PMAP2.procs.PMAPPROC_GETPORT.res,
    {
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.retries === undefined ? {} : { retries: opts.retries }),
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    },
  )
  if (port === 0 || port > 0xffff) {
    throw new PeerCallError('CALL_NOT_REGISTERED', `program ${String(prog)} version ${String(vers)} is not registered on ${transport} with the portmapper at ${host}:${String(pmapPort)}${port === 0 ? '' : ` (it answered port ${String(port)})`}`)
  }
  cache?.set(key, port)
  return port
}

/** Where a call goes when the peer's portmapper says where its program is. */
export interface RegisteredCall {
  host: string
  /** The peer's portmapper port (111 in production). */
  pmapPort: number
  transport: 'udp' | 'tcp'
  prog: number
  vers: number
  proc: number
}

export type RegisteredCallOptions = CallOptions & { cache?: PortCache | null }

/** peerPort, then callPeer; a failed call forgets the cached port. */
export async function callRegistered<A, R>(target: RegisteredCall, args: Codec<A>, argv: A, res: Codec<R>, opts: RegisteredCallOptions = {}): Promise<R> {
  const { cache = defaultPortCache, ...call } = opts
  const port = await peerPort(target.host, target.pmapPort, target.prog, target.vers, target.transport, portOptions(opts, cache))
  try {
    return await callPeer({ ...target, port }, args, argv, res, call)
  } catch (err) {
    cache?.forget(PortCache.key(target.host, target.pmapPort, target.prog, target.vers, target.transport))
    throw err
  }
}

/** peerPort, then sendOneWay; a failed send forgets the cached port. */
export async function sendOneWayRegistered<A>(target: RegisteredCall, args: Codec<A>, argv: A, opts: SendOptions & { cache?: PortCache | null } = {}): Promise<void> {
  const { cache = defaultPortCache, ...send } = opts
  const port = await peerPort(target.host, target.pmapPort, target.prog, target.vers, target.transport, portOptions(opts, cache))
  try {
    await sendOneWay({ ...target, port }, args, argv, send)
  } catch (err) {
    cache?.forget(PortCache.key(target.host, target.pmapPort, target.prog, target.vers, target.transport))
    throw err
  }
}

function portOptions(opts: { timeoutMs?: number; localAddress?: string; signal?: AbortSignal }, cache: PortCache | null): PeerPortOptions {
  return {
    cache,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  }
}
