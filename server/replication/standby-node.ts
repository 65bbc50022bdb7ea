/*
 * `tsnfs standby`: a node that applies a primary's changes to its own
 * backends (server/replication/README.md) and, once told to take over,
 * serves NFS on them with the primary's handle key and id space, so
 * clients' handles, file ids and cookies keep working.
 *
 * Before the takeover it serves only the replication program; NFS is not
 * answered at all (a client must not read a copy that may lag). At the
 * takeover the epoch rises (durably, in the standby service), every
 * export's id map moves to the new epoch, the primary's handle key becomes
 * this node's, and an NFS server starts over the same open backends, each
 * wrapped in the replicating layer with a change log of its own.
 */
import { hostname } from 'node:os'
import { join } from 'node:path'
import { repl_stat, repl_statNames } from '../../xdr/generated/replication.ts'
import { Applier } from '../../vfs/replica/applier.ts'
import { IdMap } from '../../vfs/replica/id-map.ts'
import type { Vfs } from '../../vfs/types.ts'
import { BACKENDS } from '../backends.ts'
import { validateBackends } from '../exports/parse.ts'
import type { BackendFactory } from '../backends.ts'
import type { ExportList } from '../exports/schema.ts'
import { ExportTable } from '../exports/table.ts'
import type { Export } from '../exports/table.ts'
import { createServer } from '../index.ts'
import type { ServerOptions, TsnfsServer } from '../index.ts'
import type { Logger } from '../logger.ts'
import { RpcServer } from '../rpc/server.ts'
import { NodeState, replicationDir, writeAtomic } from './node-state.ts'
import type { ServiceAddress } from './address.ts'
import { AutoTakeover } from './auto-takeover.ts'
import type { AutoTakeoverOptions } from './auto-takeover.ts'
import { PrimaryReplication } from './primary.ts'
import { replicationFamilies } from './metrics.ts'
import { startMetricsEndpoint } from '../metrics/endpoint.ts'
import type { MetricsAddress, MetricsEndpoint } from '../metrics/endpoint.ts'
import { Exposition } from '../metrics/prometheus.ts'
import { STANDBY_RPC_LIMITS, createReplicationProgram } from './standby-program.ts'
import { StandbyService } from './standby-service.ts'
import { ResyncApplier } from './resync-target.ts'
import { rejoinAsStandby } from './rejoin.ts'
import type { PrimaryOptions } from './primary.ts'

export interface StandbyNodeOptions {
  stateDir: string
  cluster?: string
  /** This node's name (default: the host name). */
  node?: string
  /** Where the replication program listens. */
  listen: { host?: string; port: number }
  exports: ExportList
  /** How the NFS server runs after a takeover (port, host, limits, locking, admin, ...). */
  serve: Omit<ServerOptions, 'exports' | 'stateDir' | 'backends' | 'replication' | 'logger'>
  log: Logger
  backends?: ReadonlyMap<string, BackendFactory>
  /** Moves the service address here (--vip) and runs --on-takeover, once NFS answers. */
  address?: ServiceAddress
  /** Called with the NFS server once it serves (after a takeover). */
  onServing?: (server: TsnfsServer, epoch: bigint) => void
  /** --auto-takeover: take over when the witnesses agree the primary is dead (auto-takeover.ts). */
  autoTakeover?: Pick<AutoTakeoverOptions, 'primary' | 'witnesses' | 'rankedBefore' | 'intervalMs' | 'timeoutMs'>
  /**
   * --rejoin: this state directory is a former primary's; make it a standby (rejoin.ts). A
   * fenced one rejoins without it.
   */
  rejoin?: boolean
  /**
   * Once this node has taken over, replicate to these standbys (--standby; typically the
   * former primary, rejoined), in this mode. Without it the new primary serves alone.
   */
  asPrimary?: Pick<PrimaryOptions, 'standbys' | 'mode' | 'lagBoundMs' | 'heartbeatMs' | 'timeoutMs' | 'resyncVerify'>
  /** After a takeover, a node of a higher epoch took over from this one (its senders heard it): stop. */
  onFenced?: (theirEpoch: bigint) => void
  /**
   * --metrics: Prometheus text of this node's replication families (metrics.ts: role, positions,
   * its own failed exports, its peers) on http://host:port/metrics, from start to close.
   */
  metrics?: MetricsAddress
}

interface Opened {
  exp: Export
  backend: Vfs
  map: IdMap
  applier: Applier
}

export const DEFAULT_CLUSTER = 'tsnfs'

export class StandbyNode {
  readonly service: StandbyService
  private readonly o: StandbyNodeOptions
  private readonly rpc: RpcServer
  private readonly opened: Opened[]
  private nfs: TsnfsServer | null = null
  private auto: AutoTakeover | null = null
  private replication: PrimaryReplication | null = null
  private listenPort = 0
  private metricsEndpoint: MetricsEndpoint | null = null

  private constructor(o: StandbyNodeOptions, service: StandbyService, rpc: RpcServer, opened: Opened[]) {
    this.o = o
    this.service = service
    this.rpc = rpc
    this.opened = opened
  }

  static async open(o: StandbyNodeOptions): Promise<StandbyNode> {
    const factories = o.backends ?? BACKENDS
    validateBackends(o.exports, new Set(factories.keys()))
    const table = new ExportTable(o.exports)
    const cluster = o.cluster ?? DEFAULT_CLUSTER
    const node = o.node ?? hostname()
    const state = await NodeState.open(o.stateDir, { cluster, node, role: 'standby', epoch: 1n })
    const role = state.get().role
    if (role === 'primary' && o.rejoin !== true) {
      // A primary's state directory given to a standby by mistake must not lose its tail silently.
      throw new Error(`${o.stateDir}: this node's state says it is a primary (epoch ${state.get().epoch}); to make it a standby of the node that took over, start it with --rejoin (it discards what no standby acknowledged, then a full resync brings it level)`)
    }
    // Fenced means another node took over: rejoining is the only way on, so it needs no flag.
    if (role !== 'standby') await rejoinAsStandby(state, table.all().map((e) => e.id), o.log)
    const opened: Opened[] = []
    try {
      for (const exp of table.all()) {
        const make = factories.get(exp.backend)
        if (make === undefined) throw new Error(`export ${exp.path}: no backend ${exp.backend}`)
        const backend = await make(exp, { stateDir: o.stateDir, log: { warn: (msg) => { o.log.warn(msg) } } })
        const map = await IdMap.open({ dir: join(replicationDir(o.stateDir), String(exp.id), 'map'), root: backend.root(), epoch: Number(state.get().epoch) })
        opened.push({ exp, backend, map, applier: new Applier({ backend, map }) })
      }
    } catch (err) {
      await closeAll(opened)
      throw err
    }
    let node$: StandbyNode | null = null
    const service = await StandbyService.open({
      state,
      exports: opened.map((x) => ({ id: x.exp.id, path: x.exp.path, target: x.applier, resync: new ResyncApplier({ backend: x.backend, map: x.map, applier: x.applier }) })),
      log: o.log.child({ component: 'standby' }),
      onTakeover: async (epoch) => {
        if (node$ === null) throw new Error('takeover before the standby finished opening')
        await node$.serveAsPrimary(epoch)
      },
      peers: () => node$?.replication?.view().peers ?? [],
    })
    const rpc = new RpcServer({ programs: [createReplicationProgram(service)], logger: o.log.child({ component: 'replication' }), limits: STANDBY_RPC_LIMITS })
    node$ = new StandbyNode(o, service, rpc, opened)
    try {
      node$.listenPort = (await rpc.listen({ port: o.listen.port, ...(o.listen.host === undefined ? {} : { host: o.listen.host }) })).port
    } catch (err) {
      await closeAll(opened)
      throw err
    }
    if (o.metrics !== undefined) {
      const render = (): string => {
        const x = new Exposition()
        replicationFamilies(() => service.view())(x)
        return x.text()
      }
      try {
        node$.metricsEndpoint = await startMetricsEndpoint(o.metrics, render, o.log.child({ component: 'metrics' }))
      } catch (err) {
        await rpc.close()
        await closeAll(opened)
        throw err
      }
    }
    if (o.autoTakeover !== undefined) node$.startAutoTakeover(o.autoTakeover, state)
    return node$
  }

  private startAutoTakeover(a: NonNullable<StandbyNodeOptions['autoTakeover']>, state: NodeState): void {
    const service = this.service
    this.auto = new AutoTakeover({
      ...a,
      self: state.get().node,
      silenceMs: () => service.primarySilenceMs(),
      role: () => state.get().role,
      epoch: () => state.get().epoch,
      notReady: () => {
        const behind = this.opened.find((x) => service.exportFailure(x.exp.id) !== null)
        return behind === undefined ? null : `export ${behind.exp.path} is not in step (needs a resync or failed)`
      },
      takeover: async () => {
        const res = await service.takeover({ force: true })
        if (res.status !== repl_stat.REPL_OK) throw new Error(`takeover refused: ${repl_statNames[res.status] ?? String(res.status)}`)
      },
      log: this.o.log,
    })
    this.auto.start()
  }

  /** The replication program's port. */
  get port(): number {
    return this.listenPort
  }

  /** The metrics endpoint's port, when `metrics` was given. */
  get metricsPort(): number | null {
    return this.metricsEndpoint?.port ?? null
  }

  /** This node's own replication (its senders to --standby), once it has taken over. */
  get asPrimary(): PrimaryReplication | null {
    return this.replication
  }

  /** The NFS server, once this node has taken over. */
  get server(): TsnfsServer | null {
    return this.nfs
  }

  async close(): Promise<void> {
    await this.auto?.stop()
    await this.metricsEndpoint?.close()
    await this.rpc.close()
    await this.service.close()
    await this.replication?.close()
    if (this.nfs !== null) await this.nfs.close()
    else await closeAll(this.opened)
  }

  /**
   * Serves NFS over the backends this node kept in step: the primary's
   * handle key (so its handles verify here), each export's id map moved to
   * the new epoch, the replicating layer with a fresh change log on top.
   */
  private async serveAsPrimary(epoch: bigint): Promise<void> {
    const info = this.service.primaryInfo()
    if (info === null) throw new Error('no primary ever said HELLO: there is no handle key to serve with')
    await writeAtomic(this.o.stateDir, 'handle.key', info.handleKey)
    const me = await NodeState.read(this.o.stateDir)
    const replication = await PrimaryReplication.open({
      stateDir: this.o.stateDir,
      cluster: me?.cluster ?? DEFAULT_CLUSTER,
      node: me?.node ?? hostname(),
      standbys: this.o.asPrimary?.standbys ?? [],
      mode: 'async',
      ...this.o.asPrimary,
      exportListText: info.exportList,
      log: this.o.log,
      maps: new Map(this.opened.map((x) => [x.exp.id, x.map])),
      onFenced: (theirEpoch) => {
        this.o.log.error({ theirEpoch: theirEpoch.toString() }, 'replication: a node of a higher epoch took over from this one')
        void (this.o.address?.fenced(theirEpoch) ?? Promise.resolve()).finally(() => this.o.onFenced?.(theirEpoch))
      },
    })
    const byId = new Map(this.opened.map((x) => [x.exp.id, x]))
    const reuse: BackendFactory = (exp) => {
      const x = byId.get(exp.id)
      if (x === undefined) throw new Error(`export ${exp.path} was not kept in step by this standby`)
      return x.backend
    }
    const names = new Set(this.opened.map((x) => x.exp.backend))
    this.nfs = await createServer({
      ...this.o.serve,
      exports: this.o.exports,
      stateDir: this.o.stateDir,
      logger: this.o.log,
      backends: new Map([...names].map((n) => [n, reuse])),
      replication,
      // The old primary's cached replies: a retransmission of a call it answered gets that answer.
      replySeed: this.service.replies.all(),
    })
    this.replication = replication
    // The cache holds them now; a later life of this node as a standby must not replay them.
    await this.service.replies.clear().catch((err: unknown) => {
      this.o.log.warn({ err }, 'replication: clearing the cached replies file failed')
    })
    this.o.log.warn({ epoch: epoch.toString(), port: this.nfs.port }, 'replication: serving NFS as the primary')
    // The address comes last: the first packet sent to it finds the service listening.
    await this.o.address?.takeover(epoch)
    this.o.onServing?.(this.nfs, epoch)
  }
}

async function closeAll(opened: readonly Opened[]): Promise<void> {
  for (const x of opened) {
    await x.map.close().catch(() => undefined)
    await x.backend.close().catch(() => undefined)
  }
}
