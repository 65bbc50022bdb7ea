/*
 * The lock service: what a locking client host runs besides its calls
 * (Linux's lockd and statd on the client side), created on a process's
 * first lock and shared by every mount with the same settings. It answers
 *   - NLM v4 GRANTED and GRANTED_MSG, for blocked locks (waiters.ts);
 *   - NSM SM_NOTIFY from a server that restarted: every mount on it
 *     reclaims its locks (reclaim = true) within the server's grace period;
 *   - PORTMAP for these two programs on lockPortmapPort, or else it
 *     registers them with the system rpcbind (rpcbind.ts).
 * At start it bumps this host's NSM state (nsm-state.ts) and notifies the
 * servers the previous instance held locks on, so they free those locks.
 * Two clients with different caller names or addresses in one process (two
 * test "hosts") get two services.
 */
import { NLM_PROG, nlm4_stats } from '../../xdr/generated/nlm.ts'
import type { nlm4_res } from '../../xdr/generated/nlm.ts'
import { SM_PROG, sm_res } from '../../xdr/generated/nsm.ts'
import { getPort } from '../portmap.ts'
import type { Protocol } from '../rpc/connect.ts'
import { connectTransport } from '../rpc/connect.ts'
import type { RpcLog } from '../rpc/transport.ts'
import type { LockOwner } from '../../locks/types.ts'
import type { LockOptions } from '../options.ts'
import { NsmState } from './nsm-state.ts'
import { sameServer } from './nsm-state.ts'
import type { KnownServer } from './nsm-state.ts'
import { mappingsAt, portmapProgram } from './portmap-program.ts'
import { registerWithRpcbind } from './rpcbind.ts'
import type { Registration } from './rpcbind.ts'
import { RpcService, serve } from './rpc-service.ts'
import type { CallInfo, ServedProgram } from './rpc-service.ts'
import { Waiters } from './waiters.ts'

const NLM4 = NLM_PROG.versions.NLM4_VERS
const SM1 = SM_PROG.versions.SM_VERS
/** What we serve: NLM v4 (callbacks) and NSM v1 (notifications). */
const PROGRAMS: readonly (readonly [number, number])[] = [[NLM_PROG.prog, NLM4.vers], [SM_PROG.prog, SM1.vers]]
const NOTIFY_POLICY = { timeoutMs: 2000, retrans: 1, hard: false }
/** The owner handle is at most 1 KiB (netobj); caller names longer than this are cut in it. */
const OH_NAME_MAX = 1016

/** What the service needs of a mount that locks through it (a LockClient). */
export interface LockPeer {
  /** Whether an SM_NOTIFY naming monName, from address, is about this mount's server. */
  matches(monName: string, address: string): boolean
  /** The server restarted (its NSM said so): reclaim what we hold. */
  rebooted(state: number): void
  /** Send GRANTED_RES to this mount's server (the answer to its GRANTED_MSG). */
  grantedRes(res: nlm4_res): Promise<void>
  /** Whether it holds locks on this server. */
  holdsOn(server: KnownServer): boolean
}

export interface ServiceConfig {
  lock: LockOptions
  /** The transport used to reach servers' NSMs at start (the first mount's). */
  proto: Protocol
  clientAddress: string | undefined
  log: RpcLog
}

function configKey(c: ServiceConfig): string {
  const l = c.lock
  return JSON.stringify([l.callerName, l.address, l.port, l.portmapPort ?? null, l.stateDir])
}

const services = new Map<string, { svc: Promise<LockService>; users: number }>()

export class LockService {
  readonly callerName: string
  readonly config: ServiceConfig
  readonly waiters = new Waiters()
  private readonly peers = new Set<LockPeer>()
  private readonly listeners: RpcService[] = []
  private nsm: NsmState | null = null
  private registration: Registration | null = null
  /** The port NLM and NSM are served on (GETPORT answers it). */
  port = 0
  /** The last state each server announced, so a repeated SM_NOTIFY reclaims once. */
  private readonly announced = new WeakMap<LockPeer, number>()

  private constructor(config: ServiceConfig) {
    this.config = config
    this.callerName = config.lock.callerName
  }

  /** The service for these settings, started on first use; give it back with release(). */
  static acquire(config: ServiceConfig): Promise<LockService> {
    const key = configKey(config)
    let entry = services.get(key)
    if (entry === undefined) {
      const svc = new LockService(config)
      entry = { svc: svc.start().then(() => svc), users: 0 }
      services.set(key, entry)
      entry.svc.catch(() => {
        if (services.get(key) === entry) services.delete(key)
      })
    }
    entry.users++
    return entry.svc
  }

  /** One user less; the last one stops the service. */
  async release(): Promise<void> {
    const key = configKey(this.config)
    const entry = services.get(key)
    if (entry === undefined) return
    entry.users--
    if (entry.users > 0) return
    services.delete(key)
    await this.stop()
  }

  /** This instance's NSM state number (sent in every LOCK). */
  get state(): number {
    return this.nsm?.state ?? 1
  }

  /** Calls answered per procedure name, summed over the listeners. */
  answered(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const l of this.listeners) for (const [k, v] of Object.entries(l.calls)) out[k] = (out[k] ?? 0) + v
    return out
  }

  /** A lock owner of this host: svid names the process (or FUSE lock owner), oh = caller name + pid + svid. */
  owner(svid: number): LockOwner {
    const name = Buffer.from(this.callerName).subarray(0, OH_NAME_MAX)
    const oh = Buffer.alloc(name.length + 8)
    name.copy(oh, 0)
    oh.writeUInt32BE(process.pid >>> 0, name.length)
    oh.writeInt32BE(svid | 0, name.length + 4)
    return { client: this.callerName, svid: svid | 0, oh }
  }

  /** A mount starts locking on its server: remembered in the state file first, so a restart notifies it. */
  async attach(peer: LockPeer, server: KnownServer): Promise<void> {
    this.peers.add(peer)
    await this.nsm?.add(server)
  }

  detach(peer: LockPeer): void {
    this.peers.delete(peer)
  }

  private async start(): Promise<void> {
    const l = this.config.lock
    this.nsm = await NsmState.start(l.stateDir, l.callerName)
    const log = this.config.log
    const programs = (): ServedProgram[] => [this.nlmProgram(), this.nsmProgram(), portmapProgram(() => mappingsAt(PROGRAMS, this.port))]
    const main = new RpcService(programs(), log)
    const wanted = l.port === 0 && l.portmapPort !== undefined ? l.portmapPort : l.port
    this.port = await main.listen(l.address, wanted)
    this.listeners.push(main)
    try {
      if (l.portmapPort !== undefined && l.portmapPort !== 0 && l.portmapPort !== this.port) {
        const pm = new RpcService(programs(), log)
        await pm.listen(l.address, l.portmapPort)
        this.listeners.push(pm)
      }
      if (l.portmapPort === undefined) this.registration = await registerWithRpcbind(PROGRAMS, this.port, log)
    } catch (err) {
      await this.stop()
      throw err
    }
    await this.notifyPrevious()
  }

  private async stop(): Promise<void> {
    await this.registration?.unregister()
    this.registration = null
    await Promise.all(this.listeners.splice(0).map(l => l.close()))
  }

  /** SM_NOTIFY each server the previous instance locked on (best effort, a few seconds at most each). */
  private async notifyPrevious(): Promise<void> {
    const nsm = this.nsm
    if (nsm === null || nsm.previous.length === 0) return
    const done: KnownServer[] = []
    await Promise.all(nsm.previous.map(async s => {
      const local = this.config.clientAddress === undefined ? {} : { localAddress: this.config.clientAddress }
      try {
        const port = await this.nsmPort(s, local)
        const t = await connectTransport(s.host, port, { protocol: s.proto, policy: NOTIFY_POLICY, cred: 'none', ...local })
        try {
          await t.call(SM_PROG.prog, SM1.vers, SM1.procs.SM_NOTIFY, { mon_name: this.callerName, state: nsm.state })
        } finally {
          await t.close()
        }
        done.push(s)
      } catch (err) {
        this.config.log.warn(`lock service: could not notify ${s.host} of our restart: ${(err as Error).message}`)
      }
    }))
    await nsm.forget(done).catch(() => undefined)
  }

  /** The server's NSM port, from the first of its portmappers that knows it. */
  private async nsmPort(s: KnownServer, local: { localAddress?: string }): Promise<number> {
    let last: unknown = new Error('no portmapper known')
    for (const portmapPort of s.portmapPorts) {
      try {
        return await getPort({ host: s.host, portmapPort, protocol: s.proto, policy: NOTIFY_POLICY, ...local }, SM_PROG.prog, SM1.vers)
      } catch (err) {
        last = err
      }
    }
    throw last
  }

  private nlmProgram(): ServedProgram {
    const granted = (a: { alock: { fh: Buffer; svid: number; l_offset: bigint; l_len: bigint } }): nlm4_stats =>
      this.waiters.grant({ fh: a.alock.fh, svid: a.alock.svid, l_offset: a.alock.l_offset, l_len: a.alock.l_len }) ? nlm4_stats.NLM4_GRANTED : nlm4_stats.NLM4_DENIED
    return {
      prog: NLM_PROG.prog,
      vers: NLM4.vers,
      procs: [
        serve(NLM4.procs.NLMPROC4_NULL, () => undefined),
        serve(NLM4.procs.NLMPROC4_GRANTED, a => ({ cookie: Buffer.from(a.cookie), stat: { stat: granted(a) } })),
        serve(NLM4.procs.NLMPROC4_GRANTED_MSG, (a, call) => {
          const res: nlm4_res = { cookie: Buffer.from(a.cookie), stat: { stat: granted(a) } }
          void this.answerMsg(res, call)
          return undefined
        }),
      ],
    }
  }

  private nsmProgram(): ServedProgram {
    return {
      prog: SM_PROG.prog,
      vers: SM1.vers,
      procs: [
        serve(SM1.procs.SM_NULL, () => undefined),
        serve(SM1.procs.SM_STAT, () => ({ res_stat: sm_res.stat_succ, state: this.state })),
        serve(SM1.procs.SM_NOTIFY, (a, call) => {
          this.serverRebooted(a.mon_name, a.state, call.peer.address)
          return undefined
        }),
      ],
    }
  }

  /** GRANTED_RES goes to the NLM of the mount whose server sent the GRANTED_MSG. */
  private async answerMsg(res: nlm4_res, call: CallInfo): Promise<void> {
    const peer = [...this.peers].find(p => p.matches('', call.peer.address))
    if (peer === undefined) return
    await peer.grantedRes(res).catch((err: unknown) => {
      this.config.log.warn(`lock service: GRANTED_RES to ${call.peer.address} failed: ${(err as Error).message}`)
    })
  }

  /**
   * A server restarted: the mounts on it reclaim. It is found by its NSM
   * name (mon_name, the server's host name) when a mount names the server
   * so, else by the notification's source address.
   */
  private serverRebooted(monName: string, state: number, address: string): void {
    const all = [...this.peers]
    let hit = all.filter(p => p.matches(monName, ''))
    if (hit.length === 0) hit = all.filter(p => p.matches('', address))
    for (const p of hit) {
      if (this.announced.get(p) === state) continue
      this.announced.set(p, state)
      this.waiters.rebooted(p)
      p.rebooted(state)
    }
  }

  /** A mount let go of everything on a server: it leaves the state file unless another mount still holds locks there. */
  async forgetServer(server: KnownServer): Promise<void> {
    if ([...this.peers].some(p => p.holdsOn(server))) return
    await this.nsm?.retain(s => !sameServer(s, server))
  }
}
