/*
 * The RPC server: one TCP listener and one UDP socket on the same port number,
 * dispatching every registered program by number (DESIGN.md §3.2), one
 * duplicate request cache shared by both transports.
 */
import type { Socket as DgramSocket } from 'node:dgram'
import { createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { once } from 'node:events'
import type { HeldChange } from '../../vfs/replica/held-changes.ts'
import type { Logger } from '../logger.ts'
import { ConnectionAdmission } from './admission.ts'
import { InFlightBudget } from './budget.ts'
import type { DispatchEnv } from './dispatch.ts'
import { DuplicateRequestCache } from './drc.ts'
import { RecordBufferPool } from '../../xdr/record.ts'
import type { MemoryHolder } from '../memory.ts'
import { peerOf } from './peer.ts'
import type { RpcProgram } from './program.ts'
import { createStats } from './stats.ts'
import type { RpcStats } from './stats.ts'
import { RpcConnection } from './tcp.ts'
import { RpcUdpEndpoint, bindUdpSocket, closeUdpSocket } from './udp.ts'

export interface RpcLimits {
  /** Largest TCP record accepted; a larger record mark closes the connection. */
  maxRecordSize: number
  maxInFlightPerConnection: number
  /**
   * Requests executing at once over all connections and UDP: above it, connections
   * stop being read and UDP calls are dropped (the client retransmits).
   */
  maxInFlightTotal: number
  /** TCP connections open at once; more are accepted and closed at once. */
  maxConnections: number
  /** TCP connections open at once from one client address. */
  maxConnectionsPerClient: number
  /** A connection with nothing received, sent or executing for this long is closed (0: never). */
  idleTimeoutMs: number
  /** A record must arrive whole within this long of its first byte, else the connection is closed (0: no deadline). */
  recordTimeoutMs: number
  /** Unsent reply bytes per connection above which it is not read (a peer that does not read its replies). */
  maxBufferedOutput: number
  drcEntries: number
  /** Bytes the duplicate request cache may hold (about 1 KiB per entry, more for a large reply). */
  drcBytes: number
  drcTtlMs: number
  /**
   * Free record buffers (~1 MiB each, for large WRITEs) kept for reuse while busy, in bytes,
   * shared by all connections; trimmed to none when the server is idle (trimMemory).
   */
  recordPoolBytes: number
  /** Larger datagrams are dropped unanswered. */
  maxUdpDatagram: number
}

export const DEFAULT_RPC_LIMITS: Readonly<RpcLimits> = Object.freeze({
  maxRecordSize: 1024 * 1024 + 64 * 1024,
  maxInFlightPerConnection: 64,
  maxInFlightTotal: 512,
  maxConnections: 4096,
  maxConnectionsPerClient: 256,
  idleTimeoutMs: 5 * 60_000,
  recordTimeoutMs: 30_000,
  maxBufferedOutput: 4 * 1024 * 1024,
  drcEntries: 16_384,
  drcBytes: 16 * 1024 * 1024,
  drcTtlMs: 120_000,
  recordPoolBytes: 48 * 1024 * 1024,
  maxUdpDatagram: 65_535,
})

/** Timer checks run this often relative to the shortest timeout, within these bounds. */
const TIMER_DIVISOR = 4
const TIMER_MIN_MS = 20
const TIMER_MAX_MS = 5_000

export interface RpcServerOptions {
  programs: readonly RpcProgram[]
  logger: Logger
  limits?: Partial<RpcLimits>
}

export interface ListenOptions {
  port: number
  host?: string
}

/** When port 0 gives a TCP port whose UDP twin is taken, try again this many times. */
const BIND_ATTEMPTS = 8

export class RpcServer {
  readonly limits: Readonly<RpcLimits>
  readonly stats: RpcStats
  private readonly env: DispatchEnv
  private readonly recordPool: RecordBufferPool
  private readonly log: Logger
  private readonly budget: InFlightBudget
  private readonly admission: ConnectionAdmission
  private readonly connections = new Set<RpcConnection>()
  private timers: NodeJS.Timeout | null = null
  private readonly abort = new AbortController()
  private tcp: Server | null = null
  private udp: DgramSocket | null = null

  constructor(opts: RpcServerOptions) {
    this.limits = Object.freeze({ ...DEFAULT_RPC_LIMITS, ...opts.limits })
    this.log = opts.logger
    this.stats = createStats()
    this.budget = new InFlightBudget(this.limits.maxInFlightTotal)
    this.admission = new ConnectionAdmission(this.limits, this.log)
    const programs = new Map<number, RpcProgram>()
    for (const p of opts.programs) {
      if (programs.has(p.prog)) throw new TypeError(`program ${p.prog} registered twice`)
      programs.set(p.prog, p)
    }
    this.env = {
      programs,
      drc: new DuplicateRequestCache({ max: this.limits.drcEntries, maxBytes: this.limits.drcBytes, ttlMs: this.limits.drcTtlMs }),
      stats: this.stats,
    }
    this.recordPool = new RecordBufferPool({ maxBytes: this.limits.recordPoolBytes })
  }

  /**
   * Calls `fn` with every reply the duplicate request cache keeps (replication ships them); with
   * `collectHeld`, also with the changes whose durability the call left to the reply
   * (a replicating primary: vfs/replica/held-changes.ts).
   */
  onReplyCached(fn: (key: string, reply: Buffer, held?: readonly HeldChange[]) => Promise<void> | undefined, collectHeld = false): void {
    this.env.drc.onComplete = fn
    this.env.drc.collectsHeld = collectHeld
  }

  /** Puts replies another node sent into the duplicate request cache (a takeover: server/replication/drc-ship.ts). */
  seedReplies(entries: Iterable<readonly [string, Buffer]>): void {
    for (const [key, reply] of entries) void this.env.drc.complete(key, [reply])
  }

  /** The record pool and the duplicate request cache, for the metrics and the idle reclaim (names get `prefix`). */
  memoryHolders(prefix = ''): MemoryHolder[] {
    const pool = this.recordPool
    const drc = this.env.drc
    return [
      { name: `${prefix}record`, kind: 'pool', bytes: () => pool.bytes, trim: () => pool.trim() },
      { name: `${prefix}drc`, kind: 'cache', bytes: () => drc.bytes, trim: () => drc.trim() },
    ]
  }

  /** Bind TCP and UDP on the same port; with port 0, the kernel picks one free for both. */
  async listen(opts: ListenOptions): Promise<{ port: number }> {
    if (this.tcp !== null) throw new Error('RpcServer is already listening')
    for (let attempt = 1; ; attempt++) {
      const tcp = this.createTcp()
      await listenTcp(tcp, opts.port, opts.host)
      const address = tcp.address()
      const port = typeof address === 'object' && address !== null ? address.port : opts.port
      try {
        this.udp = await bindUdp(port, opts.host)
      } catch (err) {
        await closeTcp(tcp)
        if (opts.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < BIND_ATTEMPTS) continue
        throw err
      }
      this.tcp = tcp
      new RpcUdpEndpoint(this.udp, this.env, this.limits.maxUdpDatagram, this.log, this.abort.signal, this.budget)
      this.startTimers()
      this.log.info({ port, host: opts.host }, 'rpc server listening (tcp+udp)')
      return { port }
    }
  }

  /** Stop listening, drop every connection, and resolve when all sockets are closed. */
  async close(): Promise<void> {
    this.abort.abort()
    if (this.timers !== null) clearInterval(this.timers)
    this.timers = null
    const tcp = this.tcp
    const udp = this.udp
    this.tcp = null
    this.udp = null
    const waits: Promise<unknown>[] = []
    if (tcp !== null) waits.push(closeTcp(tcp))
    for (const c of this.connections) {
      if (!c.socket.destroyed) waits.push(once(c.socket, 'close'))
      c.destroy()
    }
    if (udp !== null) {
      waits.push(closeUdpSocket(udp))
    }
    await Promise.all(waits)
  }

  /** One sweep for every connection's idle and record deadlines, rather than timers per connection. */
  private startTimers(): void {
    const timeouts = [this.limits.idleTimeoutMs, this.limits.recordTimeoutMs].filter(ms => ms > 0)
    if (timeouts.length === 0) return
    const every = Math.min(TIMER_MAX_MS, Math.max(TIMER_MIN_MS, Math.floor(Math.min(...timeouts) / TIMER_DIVISOR)))
    this.timers = setInterval(() => {
      const now = performance.now()
      for (const c of this.connections) c.checkTimers(now)
    }, every)
    this.timers.unref()
  }

  private createTcp(): Server {
    // Accepted paused, so that RpcConnection can move the socket to direct reads before any byte is read.
    const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket: Socket) => {
      const address = peerOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily).address
      if (this.admission.admit(address) !== null) {
        this.stats.connectionsRefused++
        socket.on('error', () => undefined)
        socket.destroy()
        return
      }
      this.stats.connectionsAccepted++
      this.stats.connectionsOpen++
      const conn = new RpcConnection(socket, this.env, this.limits, this.log, this.budget, this.recordPool)
      this.connections.add(conn)
      conn.socket.on('close', () => {
        this.stats.connectionsOpen--
        this.connections.delete(conn)
        this.admission.release(address)
      })
    })
    server.on('error', (err: Error) => {
      this.log.error({ err }, 'tcp listener error')
    })
    return server
  }
}

function listenTcp(server: Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(err)
    }
    server.once('error', onError)
    server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

function closeTcp(server: Server): Promise<void> {
  return new Promise(resolve => {
    server.close(() => {
      resolve()
    })
  })
}

/** UDP on the listener's port: IPv6 dual-stack when no host is given (like net's default), else the host's family. */
async function bindUdp(port: number, host: string | undefined): Promise<DgramSocket> {
  if (host === undefined) {
    try {
      return await bindOne('udp6', port, '::')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw err
      return bindOne('udp4', port, '0.0.0.0')
    }
  }
  return bindOne(host.includes(':') ? 'udp6' : 'udp4', port, host)
}

function bindOne(type: 'udp4' | 'udp6', port: number, address: string): Promise<DgramSocket> {
  return bindUdpSocket(type, port, address)
}
