/*
 * createServer: the one public entry of the server. It wires the layers of
 * DESIGN.md §2: exports and their backends, file handles and the state
 * directory, the MOUNT, NFSv3 and PORTMAP programs, and the RPC listeners.
 */
import type { ExportList } from './exports/schema.ts'
import { ExportTable } from './exports/table.ts'
import type { HostResolver } from './exports/resolver.ts'
import { validateBackends } from './exports/parse.ts'
import { BACKENDS, BackendSet } from './backends.ts'
import { ClusterKeys } from './cluster-keys.ts'
import type { BackendFactory } from './backends.ts'
import { DEFAULT_NFS3_LIMITS, ServerHost } from './host.ts'
import type { Logger } from './logger.ts'
import { silentLogger } from './logger.ts'
import { createMountProgram } from './mount/program.ts'
import { ExportMountResolver } from './mount/mnt.ts'
import { HandleCodec } from './nfs3/filehandle.ts'
import type { Nfs3Limits } from './nfs3/host.ts'
import { createNfs3Program } from './nfs3/program.ts'
import { createPortmapProgram } from './portmap/program.ts'
import { PortRegistry } from './portmap/registry.ts'
import type { RpcProgram } from './rpc/program.ts'
import { RpcServer } from './rpc/server.ts'
import type { RpcLimits } from './rpc/server.ts'
import type { RpcStats } from './rpc/stats.ts'
import { startMetricsEndpoint } from './metrics/endpoint.ts'
import type { MetricsAddress, MetricsEndpoint } from './metrics/endpoint.ts'
import { CallMetrics } from './metrics/instrument.ts'
import { renderPrometheus } from './metrics/prometheus.ts'
import type { StatsSource } from './metrics/prometheus.ts'
import { volumeFamilies } from './metrics/volumes.ts'
import { registerWithRpcbind, rpcbindAnswers } from './rpcbind.ts'
import { AdminCommands } from './admin/commands.ts'
import { startAdminSocket } from './admin/socket.ts'
import type { AdminSocket } from './admin/socket.ts'
import { registerSnapshotCommands } from './admin/snapshot-commands.ts'
import { registerVolumeCommands } from './admin/volume-commands.ts'
import { VolumeRegistry } from './volume-registry.ts'
import { DEFAULT_SERVER_MEMORY, MemoryReclaimer } from './memory.ts'
import type { MemoryHolder, ServerMemoryOptions } from './memory.ts'
import { ChunkPool } from '../vfs/memory/chunk-pool.ts'
import { CHUNK_SIZE } from '../vfs/memory/file-data.ts'
import { READ_BUFFER_SIZE } from '../vfs/local/local-vfs.ts'
import { ReadBuffers } from '../vfs/memory/read-buffers.ts'
import type { RpcbindRegistration } from './rpcbind.ts'
import type { PrimaryReplication } from './replication/primary.ts'
import { createPrimaryProgram } from './replication/primary-program.ts'
import { replicationFamilies } from './replication/metrics.ts'
import { openStateDir, Rmtab, WriteVerifier } from './state.ts'
import { openLocking } from './locking.ts'
import type { Locking, LockingOptions } from './locking.ts'
import type { NdmpCredentials } from './ndmp/auth-file.ts'
import { ndmpExportsOf } from './ndmp/exports.ts'
import { NDMP_DEFAULT_PORT, startNdmpServer, type NdmpServer } from './ndmp/server.ts'
import type { NdmpService, NdmpTapeDevice } from './ndmp/service-types.ts'

export interface ServerOptions {
  exports: ExportList
  /** Where the handle key and the mount list live (see defaultStateDir). */
  stateDir: string
  port?: number
  host?: string
  /** Also answer PORTMAP on this port (111 for clients that insist on a portmapper). */
  portmapPort?: number
  logger?: Logger
  rpcLimits?: Partial<RpcLimits>
  nfs3Limits?: Partial<Nfs3Limits>
  /** Pool sizes and the idle reclaim (server/memory.ts; README "Memory"). */
  memory?: Partial<ServerMemoryOptions>
  backends?: ReadonlyMap<string, BackendFactory>
  resolver?: HostResolver
  /** Serve Prometheus text on http://host:port/metrics (port 0: any free port, see metricsPort). */
  metrics?: MetricsAddress
  /**
   * Register MOUNT and NFS with the system rpcbind on 127.0.0.1:111 (and unregister on close):
   * true fails startup when that is impossible; 'auto' registers only when a portmapper answers
   * there and this server is not itself answering PORTMAP on 111; 'replace' is true that also takes
   * over the mappings of another server that still answers (server/rpcbind.ts). Default false.
   */
  registerRpcbind?: boolean | 'auto' | 'replace'
  /**
   * File locking: NLM (server/nlm) and the status monitor NSM (server/nsm), whose state lives
   * in stateDir. On unless false.
   */
  locking?: LockingOptions | false
  /**
   * Answer admin commands (server/admin: volumes, status, fail, replace, scrub, ...) on a Unix
   * domain socket at this path (mode 0600). Absent: no admin socket (`tsnfs serve` defaults it
   * to <stateDir>/admin.sock).
   */
  admin?: string
  /**
   * Replicate every export to standbys (server/replication/primary.ts): backends are served
   * through the replicating layer, the senders start once they are open, and the replication
   * program answers STATUS and HEARTBEAT on the NFS port. The server closes it.
   */
  replication?: PrimaryReplication
  /** Replies of non-idempotent calls the previous primary sent (a takeover), put in the duplicate request cache before serving. */
  replySeed?: Iterable<readonly [string, Buffer]>
  /** Serve NDMP (backups of the exports, tape devices) on its own TCP port (server/ndmp); stopped with the server. */
  ndmp?: NdmpOptions
}

export interface NdmpOptions {
  /** Default 10000 (0: any free port, see ndmpPort). */
  port?: number
  /** Default: the server's host. */
  host?: string
  /** user -> password (server/ndmp/auth-file.ts loads them). */
  credentials: NdmpCredentials
  tapes?: readonly NdmpTapeDevice[]
  /** CONFIG_GET_SERVER_INFO's revision (the package version). */
  revision?: string
  /** Services besides those of server/ndmp/services.ts (tests). */
  services?: readonly NdmpService[]
}

export interface TsnfsServer {
  readonly port: number
  readonly portmapPort: number | null
  readonly stats: RpcStats
  /** The port of the metrics endpoint, when `metrics` was given. */
  readonly metricsPort: number | null
  /** What was registered with the system rpcbind, if anything. */
  readonly rpcbind: RpcbindRegistration | null
  /** The Prometheus text the metrics endpoint serves. */
  renderMetrics(): string
  /** The pools and caches, and the idle reclaim (reclaim() runs it now). */
  readonly memory: MemoryReclaimer
  /** The lock manager and the status monitor, unless locking is off. */
  readonly locking: Locking | null
  /** The served volumes (volume= exports), by name. */
  readonly volumes: VolumeRegistry
  /** The admin command table: `admin.register(name, handler)` adds a command (server/admin/commands.ts). */
  readonly admin: AdminCommands
  /** The admin socket's path, when one listens. */
  readonly adminPath: string | null
  /** The NDMP port, when `ndmp` was given. */
  readonly ndmpPort: number | null
  /** Swap in a new export list atomically; a list that fails validation throws and changes nothing. */
  reload(list: ExportList): Promise<void>
  close(): Promise<void>
}

export async function createServer(options: ServerOptions): Promise<TsnfsServer> {
  const log = options.logger ?? silentLogger
  const replication = options.replication ?? null
  const factories = replication === null ? (options.backends ?? BACKENDS) : replication.factories(options.backends ?? BACKENDS)
  validateBackends(options.exports, new Set(factories.keys()))
  // A former primary restarted after a takeover must not serve at all (fenced before the first write).
  await replication?.checkPeersAtStart()
  const state = await openStateDir(options.stateDir)
  const rmtab = await Rmtab.open(options.stateDir, log)
  const table = new ExportTable(options.exports, options.resolver === undefined ? {} : { resolver: options.resolver })
  const mem = { ...DEFAULT_SERVER_MEMORY, ...options.memory }
  const chunkPool = new ChunkPool(CHUNK_SIZE, { maxBytes: mem.chunkPoolBytes })
  const readBuffers = new ReadBuffers(READ_BUFFER_SIZE, { maxBytes: mem.readPoolBytes })
  const reclaimer = new MemoryReclaimer({ gc: mem.gc, log })
  const poolHolder = (name: string, p: { readonly bytes: number; trim(): number }): MemoryHolder => ({ name, kind: 'pool', bytes: () => p.bytes, trim: () => p.trim() })
  reclaimer.add(poolHolder('chunks', chunkPool))
  reclaimer.add(poolHolder('read', readBuffers))
  const volumes = new VolumeRegistry()
  // Handles are made with the server's key, except a cluster export's, made with the key in its
  // database (server/cluster-keys.ts): every server of that cluster mints the same handles, and
  // adding or removing a cluster export leaves the other exports' handles as they were.
  const handles = new HandleCodec(state.handleKey)
  const clusterKeys = new ClusterKeys((id, key) => { handles.setExportKey(id, key) })
  const backends = new BackendSet({ stateDir: options.stateDir, log: { warn: (msg) => { log.warn(msg) }, info: (msg) => { log.info(msg) } }, chunkPool, readBuffers, volumes, clusterKeys }, factories)
  try {
    await backends.sync(table.all())
  } catch (err) {
    await backends.close()
    throw err
  }
  replication?.start(state.handleKey)

  // One write verifier per server process, random (server/state.ts): servers of one cluster differ,
  // so a client that moves to another server resends what it had written UNSTABLE (RFC 1813 §3.3.7).
  const host = new ServerHost(table, backends, handles, new WriteVerifier(), {
    ...DEFAULT_NFS3_LIMITS,
    ...options.nfs3Limits,
  })
  const registry = new PortRegistry()
  const nfs3 = createNfs3Program(host)
  const mount = createMountProgram({
    resolver: new ExportMountResolver(table, backends, host),
    rmtab,
    exportsList: () => table.list(),
    log,
  })
  const portmap = createPortmapProgram(registry)
  // Locking: the NSM state number is on disk before we serve; rpcbind registration is best effort (rpc.statd may own it).
  const locking = options.locking === false ? null : await openLocking(options.locking ?? {}, host, options.stateDir, log)
  const lockPrograms = locking?.programs ?? []
  let lockRpcbind: RpcbindRegistration | null = null
  // Handlers are wrapped before the RPC server sees them: latency and request ids without touching server/rpc.
  const callMetrics = new CallMetrics()
  const replPrograms = replication === null ? [] : [createPrimaryProgram(replication)]
  const served = [portmap, mount, nfs3, ...lockPrograms, ...replPrograms].map((p) => callMetrics.instrument(p))
  const rpc = new RpcServer({ programs: served, logger: log, ...(options.rpcLimits ? { limits: options.rpcLimits } : {}) })
  if (options.replySeed !== undefined) rpc.seedReplies(options.replySeed)
  // A replicating primary, in either mode, leaves its changes' durability to the reply (vfs/replica/
  // held-changes.ts): sync replies ride with their changes, and the backend's commit runs beside the log's write.
  if (replication !== null) rpc.onReplyCached((key, reply, held) => replication.replyCached(key, reply, held), true)
  let pmap: RpcServer | null = null
  let endpoint: MetricsEndpoint | null = null
  let rpcbind: RpcbindRegistration | null = null
  const sources: StatsSource[] = [{ listener: 'nfs', stats: rpc.stats }]
  for (const h of rpc.memoryHolders()) reclaimer.add(h)
  reclaimer.addSource(() => backends.memoryHolders())
  const renderMetrics = (): string => renderPrometheus(callMetrics, sources, reclaimer, [volumeFamilies(volumes), ...(replication === null ? [] : [replicationFamilies(() => replication.view())])])
  // The admin commands: a feature adds its own with one register call here.
  const admin = new AdminCommands()
  registerVolumeCommands(admin, volumes, log.child({ component: 'admin' }))
  registerSnapshotCommands(admin, volumes, log.child({ component: 'admin' }))
  let adminSocket: AdminSocket | null = null
  let ndmp: NdmpServer | null = null
  try {
    const { port } = await rpc.listen({ port: options.port ?? 2049, ...(options.host === undefined ? {} : { host: options.host }) })
    registry.registerAll([mount, nfs3, ...lockPrograms], port)
    let portmapPort: number | null = null
    if (options.portmapPort !== undefined) {
      pmap = new RpcServer({
        programs: served.slice(0, 1),
        logger: log.child({ component: 'portmap' }),
        ...(options.rpcLimits ? { limits: options.rpcLimits } : {}),
      })
      portmapPort = (await pmap.listen({ port: options.portmapPort, ...(options.host === undefined ? {} : { host: options.host }) })).port
      sources.push({ listener: 'portmap', stats: pmap.stats })
      for (const h of pmap.memoryHolders('portmap-')) reclaimer.add(h)
    }
    registry.registerAll([portmap], portmapPort ?? port)
    if (options.admin !== undefined) adminSocket = await startAdminSocket(options.admin, admin, log.child({ component: 'admin' }))
    if (options.ndmp !== undefined) {
      const o = options.ndmp
      const host = o.host ?? options.host
      ndmp = await startNdmpServer({
        port: o.port ?? NDMP_DEFAULT_PORT,
        ...(host === undefined ? {} : { host }),
        credentials: o.credentials,
        exports: ndmpExportsOf(table, backends),
        tapes: o.tapes ?? [],
        stateDir: options.stateDir,
        logger: log,
        ...(o.revision === undefined ? {} : { revision: o.revision }),
        ...(o.services === undefined ? {} : { services: o.services }),
      })
    }
    if (options.metrics !== undefined) endpoint = await startMetricsEndpoint(options.metrics, renderMetrics, log.child({ component: 'metrics' }))
    rpcbind = await registerRpcbind(options.registerRpcbind ?? false, portmapPort, [mount, nfs3], port, log)
    if (rpcbind !== null && lockPrograms.length > 0) {
      lockRpcbind = await registerWithRpcbind(lockPrograms, port, log).catch((err: unknown) => {
        log.warn({ err }, 'the system rpcbind refused the lock programs; locking peers must find us through our own portmapper')
        return null
      })
    }
    locking?.announce()
    // Requests move bytes: while the counts stand still the server is idle.
    reclaimer.start(mem.idleMs, () => sources.reduce((n, s) => n + s.stats.bytesIn + s.stats.bytesOut, 0))
    reclaimer.startBudget(mem.heapBudgetBytes)
    const registration = rpcbind
    return {
      port,
      portmapPort,
      stats: rpc.stats,
      metricsPort: endpoint?.port ?? null,
      rpcbind: registration,
      renderMetrics,
      memory: reclaimer,
      locking,
      volumes,
      admin,
      adminPath: adminSocket?.path ?? null,
      ndmpPort: ndmp?.port ?? null,
      async reload(list) {
        validateBackends(list, new Set(factories.keys()))
        // Open the new backends first, swap the table (which throws on a bad list, changing nothing),
        // then close what the new list dropped: requests never see an export without its storage.
        const next = new ExportTable(list)
        // Each cluster export brings its own handle key; the others' handles do not change.
        await backends.sync([...table.all(), ...next.all()])
        table.replace(list)
        await backends.sync(table.all())
        log.info({ exports: table.all().map((e) => e.path) }, 'exports reloaded')
      },
      async close() {
        reclaimer.stop()
        await ndmp?.close()
        await adminSocket?.close()
        await locking?.close()
        await lockRpcbind?.unregister()
        await registration?.unregister()
        await Promise.all([rpc.close(), pmap?.close(), endpoint?.close()])
        await replication?.close()
        await backends.close()
      },
    }
  } catch (err) {
    reclaimer.stop()
    await ndmp?.close()
    await adminSocket?.close()
    await locking?.close()
    await lockRpcbind?.unregister()
    await rpcbind?.unregister()
    await Promise.all([rpc.close(), pmap?.close(), endpoint?.close()])
    await replication?.close()
    await backends.close()
    throw err
  }
}

/** See ServerOptions.registerRpcbind. */
async function registerRpcbind(
  mode: boolean | 'auto' | 'replace',
  portmapPort: number | null,
  programs: readonly RpcProgram[],
  port: number,
  log: Logger,
): Promise<RpcbindRegistration | null> {
  if (mode === false) return null
  if (mode === 'auto') {
    // We are the portmapper on 111 ourselves, or none runs: nothing to register with.
    if (portmapPort === 111 || !(await rpcbindAnswers())) return null
    try {
      return await registerWithRpcbind(programs, port, log)
    } catch (err) {
      log.warn({ err }, 'the system rpcbind answers but refused our registration; continuing without it')
      return null
    }
  }
  return registerWithRpcbind(programs, port, log, {}, { replace: mode === 'replace' })
}
