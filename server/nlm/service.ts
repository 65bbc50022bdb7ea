/*
 * The lock manager proper, one for every NLM version: it checks the handle,
 * applies the grace period, asks the lock table (locks/), keeps the status
 * monitor told which clients hold locks, and sends GRANTED when a queued
 * lock is granted. The program (program.ts) only converts the wire forms.
 */
import type { LockTable } from '../../locks/table.ts'
import type { HeldLock, LockOwner, LockRequest } from '../../locks/types.ts'
import type { Logger } from '../logger.ts'
import type { CallContext } from '../rpc/program.ts'
import type { LockFiles } from './files.ts'
import type { GracePeriod } from './grace.ts'
import type { Grants } from './granted.ts'
import { NLM } from './types.ts'
import type { NlmHolder, NlmLock, NlmStat, PeerMonitor, PeerTarget } from './types.ts'

export interface NlmServiceOptions {
  /** A client that has held nothing for this long is no longer monitored. */
  unmonitorAfterMs: number
}

export interface NlmServiceDeps {
  files: LockFiles
  table: LockTable
  grace: GracePeriod
  grants: Grants
  monitor: PeerMonitor
  log: Logger
}

export interface LockArgs {
  lock: NlmLock
  exclusive: boolean
  block: boolean
  reclaim: boolean
  /** NM_LOCK: a client without a status monitor; never monitored, never blocks. */
  monitored: boolean
  /** The request came as LOCK_MSG: a later grant goes as GRANTED_MSG. */
  viaMsg: boolean
}

export interface ShareArgs {
  callerName: string
  fh: Buffer
  oh: Buffer
  access: number
  deny: number
  reclaim: boolean
}

export type TestAnswer = { stat: Exclude<NlmStat, 1> } | { stat: 1; holder: NlmHolder }

const ownerOf = (l: NlmLock): LockOwner => ({ client: l.callerName, svid: l.svid, oh: l.oh })
const grantKey = (file: string, l: NlmLock): string => `${file}|${l.callerName}|${l.svid}|${l.oh.toString('hex')}|${l.start}|${l.end}`

export class NlmService {
  private readonly d: NlmServiceDeps
  private readonly opts: NlmServiceOptions
  private readonly idle = new Map<string, NodeJS.Timeout>()

  constructor(deps: NlmServiceDeps, opts: NlmServiceOptions) {
    this.d = deps
    this.opts = opts
  }

  async test(call: CallContext, lock: NlmLock, exclusive: boolean): Promise<TestAnswer> {
    // XNFS: TEST is refused during grace too; a holder seen now may be a reclaim still to come.
    if (this.d.grace.active) return { stat: NLM.DENIED_GRACE_PERIOD }
    const f = await this.d.files.lookup(lock.fh, call)
    if (!f.ok) return { stat: f.stat as Exclude<NlmStat, 1> }
    const r = this.d.table.test(this.request(f.key, lock, exclusive))
    if (r.ok) return { stat: NLM.GRANTED }
    return { stat: NLM.DENIED, holder: holderOf(r.holder) }
  }

  async lock(call: CallContext, a: LockArgs): Promise<NlmStat> {
    const client = a.lock.callerName
    if (this.d.grace.active) {
      if (!a.reclaim) return NLM.DENIED_GRACE_PERIOD
      this.d.grace.reclaimed(client)
    }
    const f = await this.d.files.lookup(a.lock.fh, call)
    if (!f.ok) return f.stat
    if (a.monitored) {
      try {
        await this.d.monitor.monitor(client, call.peer.address)
      } catch (err) {
        // Without monitoring the client's restart would leave its locks held forever (XNFS ch. 11).
        call.log.warn({ err, client }, 'nlm: could not monitor the client; refusing the lock')
        return NLM.DENIED_NOLOCKS
      }
    }
    const req = this.request(f.key, a.lock, a.exclusive)
    const to: PeerTarget = { address: call.peer.address, transport: call.transport, vers: call.vers }
    const res = this.d.table.lock(req, {
      // A reclaim never waits: it is granted at once or not at all (there is nobody to wait behind).
      block: a.block && !a.reclaim,
      onGranted: (held) => {
        this.d.grants.start({
          key: grantKey(f.key, a.lock),
          client,
          to,
          viaMsg: a.viaMsg,
          lock: a.lock,
          exclusive: a.exclusive,
          stillHeld: () => this.stillHeld(held),
          refused: () => {
            this.d.table.unlock(held.file, held.owner, held)
            this.checkIdle(client)
          },
        })
      },
    })
    this.busy(client)
    switch (res.status) {
      case 'granted':
        // A re-sent LOCK of a lock already granted is how a client that missed GRANTED learns of it.
        this.d.grants.drop(grantKey(f.key, a.lock))
        return NLM.GRANTED
      case 'blocked':
        return NLM.BLOCKED
      case 'denied':
        this.checkIdle(client)
        return NLM.DENIED
      case 'deadlock':
        this.checkIdle(client)
        return NLM.DEADLCK
      case 'nolocks':
        this.checkIdle(client)
        return NLM.DENIED_NOLOCKS
    }
  }

  async cancel(call: CallContext, lock: NlmLock, exclusive: boolean): Promise<NlmStat> {
    const f = await this.d.files.lookup(lock.fh, call)
    if (!f.ok) return f.stat
    // XNFS: CANCEL of a request no longer queued (granted meanwhile, or never seen) is still "granted".
    this.d.table.cancel(this.request(f.key, lock, exclusive))
    this.checkIdle(lock.callerName)
    return NLM.GRANTED
  }

  async unlock(call: CallContext, lock: NlmLock): Promise<NlmStat> {
    const f = await this.d.files.lookup(lock.fh, call)
    if (!f.ok) return f.stat
    this.d.grants.drop(grantKey(f.key, lock))
    // Unlocking the middle of a lock splits it: at its limit a client keeps the lock whole.
    const r = this.d.table.unlock(f.key, ownerOf(lock), lock)
    this.d.grace.settled(lock.callerName)
    this.checkIdle(lock.callerName)
    return r === 'nolocks' ? NLM.DENIED_NOLOCKS : NLM.GRANTED
  }

  async share(call: CallContext, a: ShareArgs): Promise<NlmStat> {
    if (this.d.grace.active) {
      if (!a.reclaim) return NLM.DENIED_GRACE_PERIOD
      this.d.grace.reclaimed(a.callerName)
    }
    const f = await this.d.files.lookup(a.fh, call)
    if (!f.ok) return f.stat
    const owner: LockOwner = { client: a.callerName, svid: 0, oh: a.oh }
    const r = this.d.table.share({ file: f.key, owner, access: a.access, deny: a.deny })
    if (r === 'granted') {
      this.busy(a.callerName)
      return NLM.GRANTED
    }
    return r === 'denied' ? NLM.DENIED : NLM.DENIED_NOLOCKS
  }

  async unshare(call: CallContext, a: ShareArgs): Promise<NlmStat> {
    const f = await this.d.files.lookup(a.fh, call)
    if (!f.ok) return f.stat
    this.d.table.unshare({ file: f.key, owner: { client: a.callerName, svid: 0, oh: a.oh }, access: a.access, deny: a.deny })
    this.checkIdle(a.callerName)
    return NLM.GRANTED
  }

  /** FREE_ALL, or the client's status monitor says it restarted: everything it held is gone. */
  freeAll(client: string): number {
    this.d.grants.dropClient(client)
    this.d.grace.forget(client)
    const n = this.d.table.freeClient(client)
    if (n > 0) this.d.log.info({ client, freed: n }, 'nlm: freed the locks of a client that restarted')
    this.checkIdle(client)
    return n
  }

  close(): void {
    for (const t of this.idle.values()) clearTimeout(t)
    this.idle.clear()
  }

  private request(file: string, l: NlmLock, exclusive: boolean): LockRequest {
    return { file, owner: ownerOf(l), exclusive, start: l.start, end: l.end }
  }

  private stillHeld(h: HeldLock): boolean {
    return this.d.table.held(h.file).some((x) => sameOwner(x.owner, h.owner) && x.start <= h.start && x.end >= h.end && x.exclusive === h.exclusive)
  }

  private holds(client: string): boolean {
    return this.d.table.holds(client)
  }

  private busy(client: string): void {
    const t = this.idle.get(client)
    if (t !== undefined) {
      clearTimeout(t)
      this.idle.delete(client)
    }
  }

  /** Stop monitoring a client that holds nothing (after a while: lock/unlock pairs must not rewrite the list each time). */
  private checkIdle(client: string): void {
    if (this.holds(client) || this.idle.has(client)) return
    const t = setTimeout(() => {
      this.idle.delete(client)
      if (this.holds(client)) return
      this.d.monitor.unmonitor(client).catch((err: unknown) => {
        this.d.log.warn({ err, client }, 'nlm: could not stop monitoring an idle client')
      })
    }, this.opts.unmonitorAfterMs)
    t.unref()
    this.idle.set(client, t)
  }
}

function sameOwner(a: LockOwner, b: LockOwner): boolean {
  return a.client === b.client && a.svid === b.svid && a.oh.equals(b.oh)
}

function holderOf(h: HeldLock): NlmHolder {
  return { exclusive: h.exclusive, svid: h.owner.svid, oh: h.owner.oh, start: h.start, end: h.end }
}
