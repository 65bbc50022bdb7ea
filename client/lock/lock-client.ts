/*
 * Locks of one mount, over its server's NLM v4 (RFC 1813 §6): LOCK, UNLOCK,
 * TEST and CANCEL, TCP by default, with the mount's retry policy (a hard
 * mount waits out a server that is down, a soft one fails with its
 * RpcError). It stacks on one small interface, LockMount: the server's
 * host and the resolved client options. What the server granted is kept
 * (held.ts): reclaimed when the server's NSM says it restarted, dropped
 * by unlock, and let go at close.
 *
 * A blocking lock (wait) the server queues (NLM4_BLOCKED) ends when its
 * GRANTED callback reaches the lock service; the LOCK is also re-sent every
 * pollMs (Linux's NLMCLNT_POLL_TIMEOUT), in case a callback cannot reach us.
 * Aborting the wait sends CANCEL; a lock granted meanwhile is unlocked
 * again (Linux's nlmclnt_lock does the same), and NLM_CANCELLED is thrown.
 * During a server's grace period (NLM4_DENIED_GRACE_PERIOD) a blocking
 * request, or one asked with retryGrace, sleeps graceWaitMs and tries again.
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { NLM_PROG, nlm4_stats } from '../../xdr/generated/nlm.ts'
import type { nlm4_lock, nlm4_res } from '../../xdr/generated/nlm.ts'
import type { LockOwner } from '../../locks/types.ts'
import { LOCK_EOF } from '../../locks/types.ts'
import type { LockRange } from '../../locks/types.ts'
import type { ProcedureRef } from '../rpc/call.ts'
import { connectTransport } from '../rpc/connect.ts'
import type { RpcTransport } from '../rpc/transport.ts'
import type { ResolvedOptions } from '../options.ts'
import { findNlm } from './endpoint.ts'
import type { NlmEndpoint } from './endpoint.ts'
import { LockError } from './errors.ts'
import { HeldLocks } from './held.ts'
import type { LockService } from './lock-service.ts'
import type { LockPeer } from './lock-service.ts'
import { sameServer } from './nsm-state.ts'
import type { KnownServer } from './nsm-state.ts'
import { subtract, toRange, toWire } from './ranges.ts'
import type { HeldRange } from './ranges.ts'

const NLM4 = NLM_PROG.versions.NLM4_VERS
/** How long close() tries to unlock what the mount holds. */
const CLOSE_UNLOCK_MS = 5000

/** A function, so that the compiler does not take the answer of an earlier look for the answer now. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** What the lock layer needs of a mount. NfsClient is one. */
export interface LockMount {
  readonly host: string
  readonly options: ResolvedOptions
}

export interface LockRangeArgs {
  start: bigint | number
  /** 0: to the end of the file (and beyond). */
  length: bigint | number
  /** The lock owner's svid (the process, as NLM names it); default this process's pid. */
  owner?: number
}

export interface LockArgs extends LockRangeArgs {
  exclusive: boolean
  /** Queue behind a conflicting lock until granted (F_SETLKW), rather than fail with NLM_DENIED. */
  wait: boolean
  /** Gives up a wait: CANCEL is sent and NLM_CANCELLED thrown. */
  signal?: AbortSignal
  /** Sleep through the server's grace period instead of failing with NLM_GRACE (a wait always does). */
  retryGrace?: boolean
}

export interface LockHolder {
  exclusive: boolean
  svid: number
  start: bigint
  /** 0: to the end of the file. */
  length: bigint
  oh: Buffer
}

interface Ready {
  svc: LockService
  transport: RpcTransport
  endpoint: NlmEndpoint
  addresses: string[]
  known: KnownServer
}

export class LockClient implements LockPeer {
  readonly host: string
  readonly held = new HeldLocks()
  private readonly opts: ResolvedOptions
  private ready: Promise<Ready> | null = null
  private cookies = 0
  private closed = false
  /** Reclaims after the server's restarts, finished (tests wait on it). */
  reclaiming: Promise<void> = Promise.resolve()

  constructor(mount: LockMount) {
    this.host = mount.host
    this.opts = mount.options
  }

  /** The lock service, started (and this mount attached to it) on first use. */
  service(): Promise<LockService> {
    return this.connect().then(r => r.svc)
  }

  /** This host's lock owner for an svid (default: this process). */
  async owner(svid = process.pid): Promise<LockOwner> {
    return (await this.connect()).svc.owner(svid)
  }

  async lock(fh: Buffer, a: LockArgs): Promise<void> {
    const range = toRange(a.start, a.length)
    const r = await this.connect()
    const owner = r.svc.owner(a.owner ?? process.pid)
    const alock = this.alock(r, fh, owner, range)
    const waiter = a.wait ? r.svc.waiters.add({ fh, svid: owner.svid, l_offset: alock.l_offset, l_len: alock.l_len }, this) : null
    try {
      for (;;) {
        if (aborted(a.signal)) throw new LockError('NLM_CANCELLED', 'lock wait cancelled')
        let res: nlm4_res
        try {
          res = await this.call(r, NLM4.procs.NLMPROC4_LOCK, { cookie: this.cookie(), block: a.wait, exclusive: a.exclusive, alock, reclaim: false, state: r.svc.state })
        } catch (err) {
          await this.undoLock(r, fh, owner, alock, range, a.wait, a.exclusive)
          throw err
        }
        const stat = res.stat.stat
        if (stat === nlm4_stats.NLM4_GRANTED) break
        if (aborted(a.signal)) throw new LockError('NLM_CANCELLED', 'lock wait cancelled')
        if (stat === nlm4_stats.NLM4_DENIED_GRACE_PERIOD && (a.wait || a.retryGrace === true)) {
          await sleep(this.opts.lock.graceWaitMs, undefined, a.signal === undefined ? {} : { signal: a.signal }).catch(() => undefined)
          continue
        }
        if (stat !== nlm4_stats.NLM4_BLOCKED || waiter === null) throw LockError.fromStatus(stat, `LOCK on ${this.host}`)
        const end = await waiter.wait(this.opts.lock.pollMs, a.signal)
        if (end === 'granted') break
        if (end === 'aborted') {
          await this.cancel(r, alock, a.exclusive)
          // The GRANTED may have come just before the CANCEL: that lock is nobody's.
          if (waiter.granted) await this.unlockWire(r, alock).catch(() => undefined)
          throw new LockError('NLM_CANCELLED', 'lock wait cancelled')
        }
        // poll or rebooted: ask again (a LOCK the server still has queued is answered BLOCKED again).
      }
    } finally {
      if (waiter !== null) r.svc.waiters.remove(waiter)
    }
    if (aborted(a.signal)) {
      // Granted as the caller gave up (a FUSE waiter already answered EINTR): nobody will use it.
      await this.unlockWire(r, alock).catch(() => undefined)
      throw new LockError('NLM_CANCELLED', 'lock wait cancelled')
    }
    this.held.add(fh, owner, { ...range, exclusive: a.exclusive })
  }

  /**
   * After a LOCK whose answer was lost (a damaged reply, a soft mount's timeout): the server may have
   * granted or queued it, and the caller is told it failed, so nobody would release it and every
   * other host would be denied the range. As Linux's nlmclnt_lock does on a fatal error, undo it: a
   * CANCEL of a blocking request, and an UNLOCK of what it would have added (the parts of the range
   * this owner did not hold before; what it held stays). Best effort: the caller gets the LOCK's error.
   */
  private async undoLock(r: Ready, fh: Buffer, owner: LockOwner, alock: nlm4_lock, range: LockRange, wait: boolean, exclusive: boolean): Promise<void> {
    if (wait) await this.cancel(r, alock, exclusive)
    let added: HeldRange[] = [{ ...range, exclusive }]
    for (const h of this.held.of(fh, owner)) added = subtract(added, h)
    for (const part of added) await this.unlockWire(r, this.alock(r, fh, owner, part)).catch(() => undefined)
  }

  /** UNLOCK (a range nobody holds is no error, NLM4_DENIED included: RFC 1813 §6.2 has unlock succeed). */
  async unlock(fh: Buffer, a: LockRangeArgs): Promise<void> {
    const range = toRange(a.start, a.length)
    const r = await this.connect()
    const owner = r.svc.owner(a.owner ?? process.pid)
    await this.unlockWire(r, this.alock(r, fh, owner, range))
    this.held.remove(fh, owner, range)
  }

  /** Every lock of an owner on a file, in one UNLOCK of the whole file (a close, as Linux's locks_remove_posix); nothing is sent when it holds none. */
  async unlockAll(fh: Buffer, svid: number): Promise<void> {
    const r = await this.connect()
    const owner = r.svc.owner(svid)
    if (this.held.of(fh, owner).length === 0) return
    await this.unlockWire(r, this.alock(r, fh, owner, { start: 0n, end: LOCK_EOF }))
    this.held.remove(fh, owner, { start: 0n, end: LOCK_EOF })
  }

  /** TEST: the holder of a lock that would conflict, or null. */
  async test(fh: Buffer, a: LockRangeArgs & { exclusive: boolean; retryGrace?: boolean }): Promise<LockHolder | null> {
    const range = toRange(a.start, a.length)
    const r = await this.connect()
    const alock = this.alock(r, fh, r.svc.owner(a.owner ?? process.pid), range)
    for (;;) {
      const res = await this.call(r, NLM4.procs.NLMPROC4_TEST, { cookie: this.cookie(), exclusive: a.exclusive, alock })
      const t = res.test_stat
      if (t.stat === nlm4_stats.NLM4_GRANTED) return null
      if (t.stat === nlm4_stats.NLM4_DENIED && 'holder' in t) {
        const h = t.holder
        return { exclusive: h.exclusive, svid: h.svid, start: h.l_offset, length: h.l_len, oh: Buffer.from(h.oh) }
      }
      if (t.stat === nlm4_stats.NLM4_DENIED_GRACE_PERIOD && a.retryGrace === true) {
        await sleep(this.opts.lock.graceWaitMs)
        continue
      }
      throw LockError.fromStatus(t.stat, `TEST on ${this.host}`)
    }
  }

  /** The ranges an owner holds on a file, as granted. */
  async heldBy(fh: Buffer, svid = process.pid): Promise<readonly HeldRange[]> {
    return this.held.of(fh, await this.owner(svid))
  }

  /** Unlock everything this mount holds (best effort) and leave the lock service. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const pending = this.ready
    if (pending === null) return
    const r = await pending.catch(() => null)
    if (r === null) return
    const unlocks = (async () => {
      for (const h of this.held.all()) {
        await this.unlockWire(r, this.alock(r, h.fh, h.owner, { start: 0n, end: LOCK_EOF })).catch(() => undefined)
        this.held.remove(h.fh, h.owner, { start: 0n, end: LOCK_EOF })
      }
    })()
    // A hard mount whose server is gone would wait for ever: the server frees what is left when we next start (SM_NOTIFY).
    const timer = new Promise<void>(resolve => { setTimeout(resolve, CLOSE_UNLOCK_MS).unref() })
    await Promise.race([unlocks, timer])
    r.svc.detach(this)
    await r.transport.close()
    // Locks the server may still hold keep it in the state file: our next start notifies it.
    if (this.held.size === 0) await r.svc.forgetServer(r.known).catch(() => undefined)
    await r.svc.release()
  }

  // --- LockPeer: what the lock service calls back ---

  matches(monName: string, address: string): boolean {
    const r = this.readyNow
    const addrs = r?.addresses ?? [this.host]
    if (monName !== '' && (monName === this.host || addrs.includes(monName))) return true
    return address !== '' && addrs.includes(address)
  }

  holdsOn(s: KnownServer): boolean {
    const k = this.readyNow?.known
    return k !== undefined && sameServer(k, s) && this.held.size > 0
  }

  rebooted(): void {
    this.reclaiming = this.reclaiming.then(() => this.reclaim())
  }

  async grantedRes(res: nlm4_res): Promise<void> {
    const r = await this.connect()
    // One try, no wait for long: the server retries its GRANTED_MSG if this is lost.
    const t = await connectTransport(this.host, r.endpoint.port, { protocol: this.opts.proto, policy: { timeoutMs: 2000, retrans: 0, hard: false }, cred: 'none', ...this.local() })
    try {
      await t.call(NLM_PROG.prog, NLM4.vers, NLM4.procs.NLMPROC4_GRANTED_RES, res)
    } finally {
      await t.close()
    }
  }

  // --- internals ---

  private readyNow: Ready | null = null

  private connect(): Promise<Ready> {
    if (this.closed) return Promise.reject(new LockError('NLM_FAILED', 'the mount is closed'))
    if (!this.opts.lock.enabled) return Promise.reject(new LockError('NLM_DISABLED', 'locking is off on this mount (nolock)'))
    this.ready ??= this.open().catch((err: unknown) => {
      this.ready = null
      throw err
    })
    return this.ready
  }

  private local(): { localAddress?: string } {
    return this.opts.clientAddress === undefined ? {} : { localAddress: this.opts.clientAddress }
  }

  private async open(): Promise<Ready> {
    const o = this.opts
    const endpoint = await findNlm(this.host, o)
    const addresses = isIP(this.host) !== 0 ? [this.host] : (await lookup(this.host, { all: true }).catch(() => [])).map(a => a.address)
    // Loaded on first use: the NLM callback service (and its RPC server code) is not needed by mounts that never lock.
    const { LockService } = await import('./lock-service.ts')
    const svc = await LockService.acquire({ lock: o.lock, proto: o.proto, clientAddress: o.clientAddress, log: o.log })
    let transport: RpcTransport
    try {
      transport = await connectTransport(this.host, endpoint.port, { protocol: o.proto, policy: o.policy, cred: o.cred, log: o.log, ...this.local() })
    } catch (err) {
      await svc.release()
      throw err
    }
    const known: KnownServer = { host: this.host, portmapPorts: endpoint.portmapPorts, proto: o.proto }
    const r: Ready = { svc, transport, endpoint, addresses: addresses.length > 0 ? addresses : [this.host], known }
    await svc.attach(this, known)
    this.readyNow = r
    return r
  }

  private cookie(): Buffer {
    const b = Buffer.alloc(8)
    b.writeUInt32BE(process.pid >>> 0, 0)
    b.writeUInt32BE((this.cookies = (this.cookies + 1) >>> 0), 4)
    return b
  }

  private alock(r: Ready, fh: Buffer, owner: LockOwner, range: { start: bigint; end: bigint }): nlm4_lock {
    return { caller_name: r.svc.callerName, fh, oh: owner.oh, svid: owner.svid, ...toWire(range) }
  }

  private call<A, R>(r: Ready, p: ProcedureRef<A, R>, args: A): Promise<R> {
    return r.transport.call(NLM_PROG.prog, NLM4.vers, p, args)
  }

  private async unlockWire(r: Ready, alock: nlm4_lock): Promise<void> {
    for (;;) {
      const res = await this.call(r, NLM4.procs.NLMPROC4_UNLOCK, { cookie: this.cookie(), alock })
      const stat = res.stat.stat
      if (stat === nlm4_stats.NLM4_GRANTED || stat === nlm4_stats.NLM4_DENIED) return
      // An unlock in grace would leave the lock held after it: Linux retries it the same way.
      if (stat === nlm4_stats.NLM4_DENIED_GRACE_PERIOD) {
        await sleep(this.opts.lock.graceWaitMs)
        continue
      }
      throw LockError.fromStatus(stat, `UNLOCK on ${this.host}`)
    }
  }

  private async cancel(r: Ready, alock: nlm4_lock, exclusive: boolean): Promise<void> {
    await this.call(r, NLM4.procs.NLMPROC4_CANCEL, { cookie: this.cookie(), block: true, exclusive, alock }).catch(() => undefined)
  }

  /** Reclaim (reclaim = true) every lock held on the server, one range at a time; a refused one is lost, and said so. */
  private async reclaim(): Promise<void> {
    const r = this.readyNow
    if (r === null || this.closed) return
    for (const h of this.held.all()) {
      for (const range of [...h.ranges]) {
        try {
          const res = await this.call(r, NLM4.procs.NLMPROC4_LOCK, {
            cookie: this.cookie(), block: false, exclusive: range.exclusive, alock: this.alock(r, h.fh, h.owner, range), reclaim: true, state: r.svc.state,
          })
          if (res.stat.stat === nlm4_stats.NLM4_GRANTED) continue
          this.opts.log.warn(`nlm: ${this.host} refused to give back a lock after its restart (${LockError.fromStatus(res.stat.stat, 'reclaim').code}); it is lost`)
        } catch (err) {
          this.opts.log.warn(`nlm: reclaiming a lock on ${this.host} failed: ${(err as Error).message}; it is lost`)
        }
        this.held.remove(h.fh, h.owner, range)
      }
    }
  }
}
