/*
 * Telling a client that its queued lock is now held: NLM GRANTED to the
 * client's own lock manager (XNFS 3W ch. 10, NLM_GRANTED), or GRANTED_MSG
 * answered later by GRANTED_RES when the client spoke the message forms.
 * Retried with backoff until the client answers: the lock stays held for it
 * meanwhile, and the retries stop when it is unlocked, freed, or the client
 * re-sends its LOCK and learns it that way.
 */
import { randomBytes } from 'node:crypto'
import { nlm4_res, nlm4_testargs, nlm_res, nlm_testargs } from '../../xdr/generated/nlm.ts'
import type { Logger } from '../logger.ts'
import { lock32, lock4 } from './convert.ts'
import { NLM } from './types.ts'
import type { NlmLock, PeerCaller, PeerTarget } from './types.ts'

const PROC_GRANTED = 5
const PROC_GRANTED_MSG = 10

export interface GrantOptions {
  /** First retry after this long; doubles up to maxRetryMs. */
  retryMs: number
  maxRetryMs: number
}

export interface Grant {
  /** Identifies the held lock (file, owner, range): a second grant of it replaces the first. */
  key: string
  client: string
  to: PeerTarget
  /** The client asked with LOCK_MSG: answer with GRANTED_MSG and wait for GRANTED_RES. */
  viaMsg: boolean
  lock: NlmLock
  exclusive: boolean
  /** False once the lock is gone (unlocked, freed): then nothing more is sent. */
  stillHeld(): boolean
  /** The client refused the grant (it no longer waits): give the lock back. */
  refused(): void
}

interface Pending {
  grant: Grant
  cookie: Buffer
  delay: number
  timer: NodeJS.Timeout | null
}

export class Grants {
  private readonly byKey = new Map<string, Pending>()
  private readonly byCookie = new Map<string, Pending>()
  private readonly caller: PeerCaller
  private readonly log: Logger
  private readonly opts: GrantOptions
  private closed = false

  constructor(caller: PeerCaller, log: Logger, opts: GrantOptions) {
    this.caller = caller
    this.log = log
    this.opts = opts
  }

  get size(): number {
    return this.byKey.size
  }

  start(grant: Grant): void {
    if (this.closed) return
    this.drop(grant.key)
    const p: Pending = { grant, cookie: randomBytes(8), delay: this.opts.retryMs, timer: null }
    this.byKey.set(grant.key, p)
    this.byCookie.set(p.cookie.toString('hex'), p)
    void this.attempt(p)
  }

  /** GRANTED_RES arrived: the client took (or refused) the lock we offered under this cookie. */
  answered(cookie: Buffer, stat: number): void {
    const p = this.byCookie.get(cookie.toString('hex'))
    if (p === undefined) return
    this.settle(p, stat)
  }

  drop(key: string): void {
    const p = this.byKey.get(key)
    if (p === undefined) return
    if (p.timer !== null) clearTimeout(p.timer)
    this.byKey.delete(key)
    this.byCookie.delete(p.cookie.toString('hex'))
  }

  dropClient(client: string): void {
    for (const p of [...this.byKey.values()]) if (p.grant.client === client) this.drop(p.grant.key)
  }

  close(): void {
    this.closed = true
    for (const key of [...this.byKey.keys()]) this.drop(key)
  }

  private live(p: Pending): boolean {
    return !this.closed && this.byKey.get(p.grant.key) === p && p.grant.stillHeld()
  }

  private async attempt(p: Pending): Promise<void> {
    if (!this.live(p)) {
      this.drop(p.grant.key)
      return
    }
    const g = p.grant
    const v4 = g.to.vers === 4
    try {
      if (g.viaMsg) {
        // The answer comes as GRANTED_RES (answered()); until then keep offering.
        if (v4) await this.caller.send(g.to, PROC_GRANTED_MSG, nlm4_testargs, { cookie: p.cookie, exclusive: g.exclusive, alock: lock4(g.lock) })
        else await this.caller.send(g.to, PROC_GRANTED_MSG, nlm_testargs, { cookie: p.cookie, exclusive: g.exclusive, alock: lock32(g.lock) })
        this.retryLater(p)
        return
      }
      const res = v4
        ? await this.caller.call(g.to, PROC_GRANTED, nlm4_testargs, { cookie: p.cookie, exclusive: g.exclusive, alock: lock4(g.lock) }, nlm4_res)
        : await this.caller.call(g.to, PROC_GRANTED, nlm_testargs, { cookie: p.cookie, exclusive: g.exclusive, alock: lock32(g.lock) }, nlm_res)
      if (this.byKey.get(g.key) === p) this.settle(p, res.stat.stat)
    } catch (err) {
      this.log.debug({ err, client: g.client, address: g.to.address }, 'nlm: GRANTED not delivered; will retry')
      this.retryLater(p)
    }
  }

  private settle(p: Pending, stat: number): void {
    if (stat === NLM.DENIED_GRACE_PERIOD) {
      // The client itself is restarting: offer again later (the Linux server does the same).
      this.retryLater(p)
      return
    }
    this.drop(p.grant.key)
    if (stat !== NLM.GRANTED && p.grant.stillHeld()) {
      this.log.info({ client: p.grant.client, stat }, 'nlm: the client refused a granted lock; releasing it')
      p.grant.refused()
    }
  }

  private retryLater(p: Pending): void {
    if (!this.live(p)) {
      this.drop(p.grant.key)
      return
    }
    if (p.timer !== null) clearTimeout(p.timer)
    p.timer = setTimeout(() => {
      p.timer = null
      void this.attempt(p)
    }, p.delay)
    p.timer.unref()
    p.delay = Math.min(p.delay * 2, this.opts.maxRetryMs)
  }
}
