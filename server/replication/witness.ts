/*
 * `tsnfs witness`: a node that holds no data and only watches the primary,
 * so a standby with --auto-takeover has someone to ask (quorum.ts: a strict
 * majority of the configured witnesses must agree the primary is dead). Two
 * nodes alone cannot tell "the primary died" from "the link between us
 * broke"; a third place that still sees the primary vetoes the takeover.
 *
 * It heartbeats the primary's replication program (the primary's NFS port)
 * every `heartbeatMs` with epoch 0, which no primary takes for a takeover
 * (only a higher epoch fences), and answers REPL_STATUS with role witness,
 * the primary's epoch as last heard, and the primary as its one peer: alive
 * while it answered as primary within `timeoutMs`. HEARTBEAT is answered (role witness)
 * so probes can tell it is up; the data procedures are refused.
 */
import { TSNFS_REPL_PROG, repl_role, repl_stat as STAT } from '../../xdr/generated/replication.ts'
import type { Logger } from '../logger.ts'
import { defineProgram } from '../rpc/program.ts'
import { RpcServer } from '../rpc/server.ts'
import { heartbeatPrimary } from './quorum-probe.ts'
import type { PeerAddress } from './quorum-probe.ts'
import { STANDBY_RPC_LIMITS } from './standby-program.ts'
import { roleFromWire, statusToWire } from './status.ts'
import type { NodeStatus, PeerStatus, StatusRole } from './status.ts'
import { sleep } from './sleep.ts'

export interface WitnessOptions {
  node: string
  primary: PeerAddress
  listen: { host?: string; port: number }
  /** How often the primary is asked (1 s by default). */
  heartbeatMs?: number
  /** A primary silent this long is reported not alive (5 s by default). */
  timeoutMs?: number
  log: Logger
  now?: () => number
}

export class WitnessNode {
  private readonly o: WitnessOptions
  private readonly rpc: RpcServer
  private readonly stop$ = new AbortController()
  private readonly now: () => number
  private lastHeard: number | null = null
  private lastRole: StatusRole = 'primary'
  private epoch = 0n
  private alive = false
  private loop: Promise<void> = Promise.resolve()
  private listenPort = 0

  private constructor(o: WitnessOptions) {
    this.o = o
    this.now = o.now ?? (() => performance.now())
    this.rpc = new RpcServer({
      programs: [
        defineProgram(TSNFS_REPL_PROG, 'TSNFS_REPL_V1', {
          REPL_NULL: () => undefined,
          REPL_HELLO: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_HEARTBEAT: () => ({ status: STAT.REPL_OK, ok: { role: repl_role.REPL_WITNESS, epoch: this.epoch } }),
          REPL_APPEND: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_STATUS: () => ({ status: STAT.REPL_OK, ok: statusToWire(this.view()) }),
          REPL_TAKEOVER: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_RESYNC_BEGIN: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_RESYNC_DIR: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_RESYNC_SUMS: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_RESYNC_DATA: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_RESYNC_END: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_DRC: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_DRC_HELD: () => ({ status: STAT.REPL_NOT_STANDBY }),
          REPL_APPEND_DRC: () => ({ append: { status: STAT.REPL_NOT_STANDBY }, drc: STAT.REPL_NOT_STANDBY }),
          REPL_FAILURES: () => ({ status: STAT.REPL_OK, ok: { failures: [] } }),
        }),
      ],
      logger: o.log,
      limits: STANDBY_RPC_LIMITS,
    })
  }

  static async open(o: WitnessOptions): Promise<WitnessNode> {
    const w = new WitnessNode(o)
    w.listenPort = (await w.rpc.listen({ port: o.listen.port, ...(o.listen.host === undefined ? {} : { host: o.listen.host }) })).port
    w.loop = w.watch()
    return w
  }

  get port(): number {
    return this.listenPort
  }

  view(): NodeStatus {
    const age = this.lastHeard === null ? null : Math.round(this.now() - this.lastHeard)
    const alive = age !== null && age <= (this.o.timeoutMs ?? 5000)
    const peer: PeerStatus = {
      node: this.o.primary.name,
      address: `${this.o.primary.host}:${String(this.o.primary.port)}`,
      role: this.lastRole,
      alive,
      lastHeartbeatAgeMs: age,
      acked: 0n,
      lagOps: 0n,
      lagBytes: 0n,
      state: alive ? 'watching' : age === null ? 'never heard' : 'silent',
    }
    return { node: this.o.node, role: 'witness', epoch: this.epoch, positions: [], peers: [peer] }
  }

  async close(): Promise<void> {
    this.stop$.abort()
    await this.loop
    await this.rpc.close()
  }

  private async watch(): Promise<void> {
    const every = this.o.heartbeatMs ?? 1000
    const timeoutMs = Math.min(every * 2, this.o.timeoutMs ?? 5000)
    while (!this.stop$.signal.aborted) {
      const res = await heartbeatPrimary({ self: this.o.node, selfEpoch: 0n, primary: this.o.primary, timeoutMs, signal: this.stop$.signal })
      if (res !== null) {
        // A fenced former primary answers too, but serves no writes: only an answer as primary counts.
        if (res.role === repl_role.REPL_PRIMARY) this.lastHeard = this.now()
        this.lastRole = roleFromWire(res.role)
        if (res.epoch > this.epoch) this.epoch = res.epoch
      }
      const alive = this.view().peers[0]?.alive === true
      if (alive !== this.alive) {
        this.alive = alive
        if (alive) this.o.log.info({ primary: this.o.primary.name, epoch: this.epoch.toString() }, 'witness: the primary answers')
        else this.o.log.warn({ primary: this.o.primary.name }, 'witness: the primary is silent')
      }
      await sleep(every, this.stop$.signal)
    }
  }
}
