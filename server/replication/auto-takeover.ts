/*
 * --auto-takeover (issue 15 §5): a standby that has not heard its primary
 * for the heartbeat timeout asks the witnesses (quorum-probe.ts) and takes
 * over only when decideTakeover (quorum.ts) says a strict majority agrees the
 * primary is dead and nobody vetoes. It checks every `intervalMs`; the
 * takeover itself is the same as `tsnfs replication takeover --force` (the
 * standby service's; the NFS server starts, the address moves).
 *
 * Not while an export needs a resync: serving a copy known to be incomplete
 * would hand clients missing files; an operator decides that (--force).
 */
import type { Logger } from '../logger.ts'
import type { NodeRole } from './node-state.ts'
import { probeQuorum } from './quorum-probe.ts'
import type { PeerAddress, QuorumProbe } from './quorum-probe.ts'
import { sleep } from './sleep.ts'

export interface AutoTakeoverOptions {
  self: string
  primary: PeerAddress
  witnesses: readonly PeerAddress[]
  /** Standbys ranked before this one (only the first live standby takes over). */
  rankedBefore?: readonly PeerAddress[]
  /** How often silence is checked (the heartbeat interval, 1 s by default). */
  intervalMs?: number
  /** Silence longer than this starts a probe; also each probe call's bound (5 s by default). */
  timeoutMs?: number
  /** Milliseconds since the primary was last heard; null when none ever attached (nothing to take over). */
  silenceMs: () => number | null
  role: () => NodeRole
  epoch: () => bigint
  /** Why this node may not take over now (an export needs a resync), or null. */
  notReady: () => string | null
  takeover: () => Promise<void>
  log: Logger
}

export class AutoTakeover {
  private readonly o: AutoTakeoverOptions
  private readonly stop$ = new AbortController()
  private loop: Promise<void> = Promise.resolve()
  private lastSaid = ''
  /** The last probe (status and tests read it). */
  last: QuorumProbe | null = null

  constructor(o: AutoTakeoverOptions) {
    if (o.witnesses.length === 0) throw new Error('--auto-takeover needs --witness (at least one; a strict majority must agree): without witnesses it would split the brain on any partition')
    this.o = o
  }

  start(): void {
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.stop$.abort()
    await this.loop
  }

  /** One check; true when this node took over. */
  async check(): Promise<boolean> {
    const o = this.o
    if (o.role() !== 'standby') return false
    const timeoutMs = o.timeoutMs ?? 5000
    const silent = o.silenceMs()
    if (silent === null || silent < timeoutMs) {
      this.say('info', silent === null ? 'no primary has attached yet' : 'the primary answers', {})
      return false
    }
    const probe = await probeQuorum({ self: o.self, selfEpoch: o.epoch(), primary: o.primary, witnesses: o.witnesses, ...(o.rankedBefore === undefined ? {} : { rankedBefore: o.rankedBefore }), timeoutMs, signal: this.stop$.signal })
    this.last = probe
    if (this.stop$.signal.aborted) return false
    const d = probe.decision
    if (!d.takeover) {
      this.say('warn', `the primary is silent (${String(Math.round(silent))} ms) but no takeover: ${d.veto ?? ''} ${d.detail}`, { votes: d.votes, needed: d.needed })
      return false
    }
    const why = o.notReady()
    if (why !== null) {
      this.say('error', `the witnesses agree the primary is dead, but this node cannot take over: ${why}`, { votes: d.votes })
      return false
    }
    o.log.warn({ votes: d.votes, needed: d.needed, detail: d.detail }, 'replication: automatic takeover (the witnesses agree the primary is dead)')
    await o.takeover()
    return true
  }

  private async run(): Promise<void> {
    const every = this.o.intervalMs ?? 1000
    while (!this.stop$.signal.aborted) {
      try {
        if (await this.check()) return
      } catch (err) {
        this.o.log.error({ err }, 'replication: automatic takeover check failed')
      }
      await sleep(every, this.stop$.signal)
    }
  }

  /** Logs a state once, not every second. */
  private say(level: 'info' | 'warn' | 'error', msg: string, extra: Record<string, unknown>): void {
    const key = `${level}:${msg.replace(/\(\d+ ms\)/, '')}`
    if (key === this.lastSaid) return
    this.lastSaid = key
    this.o.log[level](extra, `replication: auto-takeover: ${msg}`)
  }
}
