/*
 * The NDMP server: a TCP listener (port 10000 by default, draft §2), one NdmpServerSession per
 * DMA connection, and the handler table the services fill (CONNECT and CONFIG here, then
 * server/ndmp/services.ts, then any given). On accept it sends NOTIFY_CONNECTION_STATUS
 * CONNECTED offering version 4 (or maxVersion); past maxSessions it sends REFUSED and closes.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { silentLogger, type Logger } from '../logger.ts'
import type { NdmpCredentials } from './auth-file.ts'
import { configService } from './config.ts'
import { connectService } from './connect.ts'
import { NdmpHandlerTable } from './handler-table.ts'
import { NDMP_SERVICES } from './services.ts'
import { NdmpServerSession } from './session.ts'
import type { NdmpContext, NdmpExport, NdmpService, NdmpTapeDevice } from './service-types.ts'

export const NDMP_DEFAULT_PORT = 10000

export interface NdmpServerOptions {
  /** 0: any free port (see NdmpServer.port). */
  port: number
  host?: string
  credentials: NdmpCredentials
  /** The exports now served (called on every use: reloads change them). */
  exports: () => readonly NdmpExport[]
  tapes?: readonly NdmpTapeDevice[]
  stateDir: string
  logger?: Logger
  /** CONFIG_GET_SERVER_INFO's revision (the package version). */
  revision?: string
  /** Services besides CONNECT, CONFIG and server/ndmp/services.ts (tests). */
  services?: readonly NdmpService[]
  /** Connections served at once; more are refused (default 64). */
  maxSessions?: number
  /** A connection that has not authorized within this many ms is closed (default 60000; 0: never). */
  authTimeoutMs?: number
  /** The highest protocol version offered and opened (default 4; 3: a v3-only server, as older NAS are). */
  maxVersion?: 3 | 4
}

export interface NdmpServer {
  readonly port: number
  /** Open connections now. */
  readonly sessions: number
  /** Stops listening, ends every connection and waits for their close hooks. */
  close(): Promise<void>
}

export async function startNdmpServer(options: NdmpServerOptions): Promise<NdmpServer> {
  const log = (options.logger ?? silentLogger).child({ component: 'ndmp' })
  const table = new NdmpHandlerTable()
  const services = [connectService(options.credentials), configService({ revision: options.revision ?? '0' }), ...NDMP_SERVICES, ...(options.services ?? [])]
  for (const s of services) s.register(table)
  const context: NdmpContext = {
    exports: options.exports,
    exportByPath: (path) => options.exports().find((e) => e.path === path),
    stateDir: options.stateDir,
    tapes: options.tapes ?? [],
    logger: log,
  }
  const maxSessions = options.maxSessions ?? 64
  const authTimeoutMs = options.authTimeoutMs ?? 60_000
  const live = new Set<NdmpServerSession>()
  let nextId = 1
  const server: Server = createServer((socket: Socket) => {
    const id = nextId++
    const session = new NdmpServerSession(socket, { id, context, table, log: log.child({ session: id }), authTimeoutMs, ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }) })
    if (live.size >= maxSessions) {
      log.warn({ peer: socket.remoteAddress, max: maxSessions }, 'ndmp: too many connections, refusing one')
      session.greet(2, `this server serves at most ${maxSessions} connections`)
      session.close()
      return
    }
    live.add(session)
    void session.done.then(() => live.delete(session))
    log.debug({ peer: socket.remoteAddress, session: id }, 'ndmp: connection')
    session.greet(0)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: options.port, ...(options.host === undefined ? {} : { host: options.host }) }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => {
    log.error({ err: err.message }, 'ndmp listener error')
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  log.info({ port }, 'ndmp: listening')
  return {
    port,
    get sessions() {
      return live.size
    },
    async close(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => { resolve() }))
      const all = [...live]
      for (const s of all) s.destroy()
      await Promise.all(all.map((s) => s.done))
      await closed
    },
  }
}
