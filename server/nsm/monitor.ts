/*
 * The status monitor (NSM, XNFS 3W ch. 11) as the server's NLM uses it,
 * without RPC: our state number, the hosts we monitor, notifying them when
 * we restart, and hearing when they restart. server/nsm/program.ts puts the
 * SM_* procedures on top for other lock managers and peers.
 *
 * The list persists (store.ts). Entries loaded at start belong to the
 * previous run: once a peer acknowledges our restart its old entries are
 * dropped, unless it was monitored again since (a client that reclaims
 * locks is monitored anew); entries of peers that never answered stay, for
 * the next restart to try again (sm-notify keeps them in sm.bak likewise).
 */
import { setMaxListeners } from 'node:events'
import { hostname } from 'node:os'
import type { mon, mon_id, my_id } from '../../xdr/generated/nsm.ts'
import { SM_MAXSTRLEN, sm_status } from '../../xdr/generated/nsm.ts'
import { xdr_void } from '../../xdr/runtime/codec.ts'
import { callRegistered, defaultPortCache } from '../callback/portmap.ts'
import type { PortCache } from '../callback/portmap.ts'
import type { Logger } from '../logger.ts'
import { silentLogger } from '../logger.ts'
import { notifyPeers } from './notify.ts'
import type { NotifyReport, NotifyTarget } from './notify.ts'
import { NsmStore, nextOddState } from './store.ts'
import type { NsmEntry } from './store.ts'

export type { NotifyReport, NotifyTarget } from './notify.ts'
export type { NsmCallback, NsmEntry } from './store.ts'

export interface StatusMonitorOptions {
  stateDir: string
  /** The mon_name we announce in SM_NOTIFY (default os.hostname()). */
  name?: string
  /** Where peers' portmappers listen (default 111; tests give each loopback "host" its own). */
  peerPortmapPort?: number
  /** Monitor list entries at most (default 4096); more fail with NSM_FULL. */
  maxEntries?: number
  /** Stop retrying a silent peer after this long (default 10 min). */
  notifyGiveUpMs?: number
  /** First retry delay for SM_NOTIFY, doubling up to notifyMaxRetryMs (defaults 1 s and 30 s). */
  notifyFirstRetryMs?: number
  notifyMaxRetryMs?: number
  /** Peers notified at once (default 16). */
  notifyConcurrency?: number
  /** Per try of an outbound call (default 1000 ms). */
  callTimeoutMs?: number
  log?: Logger
  /** The peer port cache (default the process-wide one). */
  portCache?: PortCache | null
}

export type PeerRestartListener = (name: string, state: number, address: string) => void

export class NsmError extends Error {
  readonly code: 'NSM_FULL' | 'NSM_BAD_NAME'
  constructor(code: NsmError['code'], message: string) {
    super(message)
    this.name = 'NsmError'
    this.code = code
  }
}

const LOOPBACK = '127.0.0.1'

export class StatusMonitor {
  readonly name: string
  readonly peerPortmapPort: number
  /** The current (or last) notifyAll() run, for tests and logs. */
  lastNotify: Promise<NotifyReport> | null = null
  private readonly store: NsmStore
  private readonly opts: Required<Omit<StatusMonitorOptions, 'name' | 'peerPortmapPort' | 'log' | 'portCache' | 'stateDir'>>
  private readonly log: Logger
  private readonly cache: PortCache | null
  private readonly loaded: readonly NotifyTarget[]
  /** Entries of an earlier run (by identity): dropped once their peer acknowledges our restart. */
  private stale: Set<NsmEntry>
  private readonly listeners = new Set<PeerRestartListener>()
  /** The last state each peer announced: a repeated SM_NOTIFY is not a new restart (as Linux lockd's h_nsmstate). */
  private readonly lastSeen = new Map<string, number>()
  private run: AbortController | null = null
  private closed = false

  private constructor(store: NsmStore, o: StatusMonitorOptions) {
    this.store = store
    this.name = o.name ?? hostname()
    this.peerPortmapPort = o.peerPortmapPort ?? 111
    this.log = o.log ?? silentLogger
    this.cache = o.portCache === undefined ? defaultPortCache : o.portCache
    this.opts = {
      maxEntries: o.maxEntries ?? 4096,
      notifyGiveUpMs: o.notifyGiveUpMs ?? 10 * 60_000,
      notifyFirstRetryMs: o.notifyFirstRetryMs ?? 1000,
      notifyMaxRetryMs: o.notifyMaxRetryMs ?? 30_000,
      notifyConcurrency: o.notifyConcurrency ?? 16,
      callTimeoutMs: o.callTimeoutMs ?? 1000,
    }
    this.stale = new Set(store.entries)
    this.loaded = distinct(store.entries.filter((e) => e.callback === null))
  }

  /** Loads the list and moves to the next odd state number, on disk before this resolves (so before we serve). */
  static async open(o: StatusMonitorOptions): Promise<StatusMonitor> {
    const store = await NsmStore.open(o.stateDir, o.log)
    await store.commit({ state: nextOddState(store.state) })
    const m = new StatusMonitor(store, o)
    m.log.info({ state: store.state, monitored: store.entries.length }, 'status monitor state')
    return m
  }

  get state(): number {
    return this.store.state
  }

  /** The monitor list now (copies). */
  entries(): NsmEntry[] {
    return this.store.entries.map((e) => ({ ...e, callback: e.callback === null ? null : { ...e.callback, priv: Buffer.from(e.callback.priv) } }))
  }

  /** The hosts our NLM monitored when we started: the clients to expect reclaims from. */
  known(): NotifyTarget[] {
    return this.loaded.map((t) => ({ ...t }))
  }

  /** Monitor `name` for our NLM (idempotent; a new address replaces the old). Throws NsmError NSM_FULL at the bound. */
  async monitor(name: string, address: string): Promise<void> {
    checkName(name)
    await this.put({ name, address, callback: null }, (e) => e.callback === null && e.name === name)
  }

  unmonitor(name: string): Promise<void> {
    return this.remove((e) => e.callback === null && e.name === name)
  }

  /** Listen for peers' restarts (SM_NOTIFY); returns the unsubscribe. */
  onPeerRestart(listener: PeerRestartListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** SM_NOTIFY to every monitored host, retried in the background; supersedes a run still retrying. Never rejects. */
  notifyAll(): Promise<NotifyReport> {
    this.run?.abort()
    const run = new AbortController()
    // Each notify worker waits on this signal twice at most at once (its call, its retry sleep):
    // past Node's default of ten listeners it warned of a leak when more than ten peers were retried.
    setMaxListeners(2 * this.opts.notifyConcurrency + 2, run.signal)
    this.run = run
    const p = notifyPeers(distinct(this.store.entries), {
      name: this.name,
      state: this.state,
      peerPortmapPort: this.peerPortmapPort,
      giveUpMs: this.opts.notifyGiveUpMs,
      firstRetryMs: this.opts.notifyFirstRetryMs,
      maxRetryMs: this.opts.notifyMaxRetryMs,
      concurrency: this.opts.notifyConcurrency,
      callTimeoutMs: this.opts.callTimeoutMs,
      cache: this.cache,
      signal: run.signal,
      log: this.log,
      onNotified: (t) => {
        this.dropStale(t)
      },
    })
    this.lastNotify = p
    return p
  }

  /** Stop notification retries; state stays on disk. */
  async close(): Promise<void> {
    this.closed = true
    this.run?.abort()
    await this.store.flushed()
  }

  /** SM_MON from a local lock manager: watch mon_name, call its my_id back on restart. false at the bound. */
  async register(m: mon): Promise<boolean> {
    const id = m.mon_id
    const callback = { ...id.my_id, priv: Buffer.from(m.priv) }
    const same = (e: NsmEntry): boolean => e.name === id.mon_name && e.callback !== null && sameId(e.callback, id.my_id)
    try {
      checkName(id.mon_name)
      await this.put({ name: id.mon_name, address: id.mon_name, callback }, same)
      return true
    } catch (err) {
      if (err instanceof NsmError) return false
      throw err
    }
  }

  /** SM_UNMON. */
  unregister(id: mon_id): Promise<void> {
    return this.remove((e) => e.name === id.mon_name && e.callback !== null && sameId(e.callback, id.my_id))
  }

  /** SM_UNMON_ALL. */
  unregisterAll(id: my_id): Promise<void> {
    return this.remove((e) => e.callback !== null && sameId(e.callback, id))
  }

  /** SM_SIMU_CRASH: as if we had crashed and restarted: the next odd state, on disk, then everyone is told. */
  async simulateCrash(): Promise<void> {
    this.stale = new Set(this.store.entries)
    await this.store.commit({ state: nextOddState(this.state + 1) })
    this.log.info({ state: this.state }, 'status monitor: simulated crash')
    void this.notifyAll()
  }

  /** SM_NOTIFY: `name` restarted with `state`, told from `address`. Returns false for a repeat of the last state it announced. */
  peerRestarted(name: string, state: number, address: string): boolean {
    const key = name.toLowerCase()
    if (this.lastSeen.get(key) === state) return false
    this.lastSeen.delete(key)
    if (this.lastSeen.size >= this.opts.maxEntries) {
      const oldest = this.lastSeen.keys().next()
      if (oldest.done !== true) this.lastSeen.delete(oldest.value)
    }
    this.lastSeen.set(key, state)
    this.log.info({ peer: name, address, state }, 'status monitor: a peer restarted')
    for (const l of this.listeners) {
      try {
        l(name, state, address)
      } catch (err) {
        this.log.error({ err, peer: name }, 'status monitor: a restart listener failed')
      }
    }
    for (const e of this.store.entries) {
      if (e.callback === null || e.name.toLowerCase() !== key || this.closed) continue
      this.callBack(e.callback, name, state)
    }
    return true
  }

  /** Tell a local lock manager (SM_MON's my_id) that a host it watches restarted: sm_status via 127.0.0.1's portmapper. */
  private callBack(cb: NonNullable<NsmEntry['callback']>, name: string, state: number): void {
    const target = { host: LOOPBACK, pmapPort: this.peerPortmapPort, transport: 'udp' as const, prog: cb.my_prog >>> 0, vers: cb.my_vers >>> 0, proc: cb.my_proc >>> 0 }
    callRegistered(target, sm_status, { mon_name: name, state, priv: cb.priv }, xdr_void, { timeoutMs: this.opts.callTimeoutMs, cache: this.cache }).then(
      () => {
        this.log.debug({ peer: name, prog: target.prog }, 'status monitor: local lock manager told of a restart')
      },
      (err: unknown) => {
        this.log.warn({ err, peer: name, prog: target.prog, vers: target.vers, proc: target.proc }, 'status monitor: could not call back the local lock manager')
      },
    )
  }

  private async put(entry: NsmEntry, same: (e: NsmEntry) => boolean): Promise<void> {
    const list = this.store.entries
    const i = list.findIndex(same)
    const old = list[i]
    if (old !== undefined && !this.stale.has(old) && old.address === entry.address && samePriv(old, entry)) return this.store.flushed()
    if (old === undefined && list.length >= this.opts.maxEntries) {
      throw new NsmError('NSM_FULL', `the status monitor list is full (${String(this.opts.maxEntries)} entries)`)
    }
    const next = [...list]
    if (old === undefined) next.push(entry)
    else next[i] = entry
    await this.store.commit({ entries: next })
  }

  private async remove(drop: (e: NsmEntry) => boolean): Promise<void> {
    const next = this.store.entries.filter((e) => !drop(e))
    if (next.length === this.store.entries.length) return this.store.flushed()
    await this.store.commit({ entries: next })
  }

  private dropStale(t: NotifyTarget): void {
    const drop = (e: NsmEntry): boolean => this.stale.has(e) && e.name === t.name && e.address === t.address
    if (!this.store.entries.some(drop)) return
    this.remove(drop).catch((err: unknown) => {
      this.log.warn({ err }, 'status monitor: could not save the monitor list')
    })
  }
}

function checkName(name: string): void {
  if (name === '' || Buffer.byteLength(name) > SM_MAXSTRLEN) throw new NsmError('NSM_BAD_NAME', `bad host name to monitor (${String(Buffer.byteLength(name))} bytes)`)
}

function sameId(a: NsmEntry['callback'] & object, b: my_id): boolean {
  return a.my_name === b.my_name && a.my_prog === b.my_prog && a.my_vers === b.my_vers && a.my_proc === b.my_proc
}

function samePriv(a: NsmEntry, b: NsmEntry): boolean {
  if (a.callback === null || b.callback === null) return a.callback === b.callback
  return a.callback.priv.equals(b.callback.priv)
}

/** One target per (name, address). */
function distinct(entries: readonly NsmEntry[]): NotifyTarget[] {
  const seen = new Map<string, NotifyTarget>()
  for (const e of entries) seen.set(`${e.name}\0${e.address}`, { name: e.name, address: e.address })
  return [...seen.values()]
}
