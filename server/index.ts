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
import { RpcServer } from './rpc/server.ts'
import type { RpcLimits } from './rpc/server.ts'
import type { RpcStats } from './rpc/stats.ts'
import { openStateDir, Rmtab, WriteVerifier } from './state.ts'

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
  backends?: ReadonlyMap<string, BackendFactory>
  resolver?: HostResolver
}

export interface TsnfsServer {
  readonly port: number
  readonly portmapPort: number | null
  readonly stats: RpcStats
  /** Swap in a new export list atomically; a list that fails validation throws and changes nothing. */
  reload(list: ExportList): Promise<void>
  close(): Promise<void>
}

export async function createServer(options: ServerOptions): Promise<TsnfsServer> {
  const log = options.logger ?? silentLogger
  const factories = options.backends ?? BACKENDS
  validateBackends(options.exports, new Set(factories.keys()))
  const state = await openStateDir(options.stateDir)
  const rmtab = await Rmtab.open(options.stateDir, log)
  const table = new ExportTable(options.exports, options.resolver === undefined ? {} : { resolver: options.resolver })
  const backends = new BackendSet(factories)
  await backends.sync(table.all())

  const host = new ServerHost(table, backends, new HandleCodec(state.handleKey), new WriteVerifier(), {
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
  const rpc = new RpcServer({ programs: [portmap, mount, nfs3], logger: log, ...(options.rpcLimits ? { limits: options.rpcLimits } : {}) })
  let pmap: RpcServer | null = null
  try {
    const { port } = await rpc.listen({ port: options.port ?? 2049, ...(options.host === undefined ? {} : { host: options.host }) })
    registry.registerAll([mount, nfs3], port)
    let portmapPort: number | null = null
    if (options.portmapPort !== undefined) {
      pmap = new RpcServer({
        programs: [portmap],
        logger: log.child({ component: 'portmap' }),
        ...(options.rpcLimits ? { limits: options.rpcLimits } : {}),
      })
      portmapPort = (await pmap.listen({ port: options.portmapPort, ...(options.host === undefined ? {} : { host: options.host }) })).port
    }
    registry.registerAll([portmap], portmapPort ?? port)
    return {
      port,
      portmapPort,
      stats: rpc.stats,
      async reload(list) {
        validateBackends(list, new Set(factories.keys()))
        // Open the new backends first, swap the table (which throws on a bad list, changing nothing),
        // then close what the new list dropped: requests never see an export without its storage.
        const next = new ExportTable(list)
        await backends.sync([...table.all(), ...next.all()])
        table.replace(list)
        await backends.sync(table.all())
        log.info({ exports: table.all().map((e) => e.path) }, 'exports reloaded')
      },
      async close() {
        await Promise.all([rpc.close(), pmap?.close()])
        await backends.close()
      },
    }
  } catch (err) {
    await Promise.all([rpc.close(), pmap?.close()])
    await backends.close()
    throw err
  }
}
