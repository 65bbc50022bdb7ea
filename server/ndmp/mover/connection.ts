/*
 * The NDMP data connection: the byte stream between the DATA service (server/ndmp/data) and the
 * MOVER (server/ndmp/mover), whichever side listens and whichever transport carries it.
 *
 * Draft (draft-skardal-ndmpv4) §3.4 / §3.6: one side LISTENs (MOVER_LISTEN or DATA_LISTEN) and
 * answers an address; the DMA hands that address to the other side's CONNECT (DATA_CONNECT or
 * MOVER_CONNECT). Two address kinds:
 *   - NDMP_ADDR_TCP: a TCP connection; the listener answers its IPv4 addresses and port (v4: a
 *     list of tcp_addr, v3: one). listenTcp() / connectTcp() below.
 *   - NDMP_ADDR_LOCAL: data and tape service in this server, driven over the same NDMP session:
 *     an in-process pipe, no socket. localDataPort(session).listen() / .connect().
 * Either way each side gets a DataEndpoint: a ByteSink for the side that produces the stream (the
 * DATA service in a backup, the MOVER in a restore) and a ByteSource for the side that consumes it.
 *
 * How the DATA service uses it (the contract the MOVER keeps on the other end):
 *   backup:  for each chunk `await ep.write(chunk)` (resolves when accepted: backpressure), then
 *            `await ep.end()` — the mover sees end of stream, writes its last partial record and
 *            halts with CONNECT_CLOSED. A chunk is handed over, not copied: do not change it after.
 *   restore: `await ep.read(max)` until null (the mover ended the stream: end of window/tape
 *            data). After NOTIFY_DATA_READ (direct access) the bytes that follow are those of the
 *            asked offset: the mover seeks before it writes them.
 *   abort:   `ep.close()` — the peer's pending and later writes reject with DATA_CONN_CLOSED,
 *            its reads drain what was already sent and then see end of stream (as a TCP FIN).
 *   `ep.closed` resolves once both directions are done ({ error } when the transport failed),
 *   so a side learns that the other went away even while it is not reading.
 * Errors: DataConnectionError with a stable code (connection-error.ts).
 */
import { createServer, connect, isIPv4 } from 'node:net'
import type { Server, Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { ByteSink, ByteSource } from '../../../backup/types.ts'
import { DataConnectionError } from './connection-error.ts'
import { SocketEndpoint } from './socket-endpoint.ts'
import { localPipe } from './local-pipe.ts'

export { DataConnectionError } from './connection-error.ts'
export type { DataConnectionErrorCode } from './connection-error.ts'

/** One end of the data connection. */
export interface DataEndpoint extends ByteSink, ByteSource {
  readonly kind: 'tcp' | 'local'
  /** "ip:port" of the peer for TCP, "local" for LOCAL: for logs and DATA/MOVER_GET_STATE. */
  readonly peer: string
  /** Bytes handed to write() / returned by read() so far. */
  readonly bytesWritten: bigint
  readonly bytesRead: bigint
  /** Ends this direction once everything written is flushed: the peer's read() then returns null. */
  end(): Promise<void>
  /** Tears the connection down (both directions); idempotent. `err` is what this side's pending calls reject with. */
  close(err?: DataConnectionError): void
  /** Settles when the connection is gone: resolves { error: undefined } on an orderly close. */
  readonly closed: Promise<{ error: DataConnectionError | undefined }>
}

/** An NDMP tcp_addr (v4 §3.4.x ndmp_tcp_addr; v3 ndmp_tcp_addr): IPv4 as dotted text here. */
export interface TcpAddr {
  host: string
  port: number
}

/** A TCP listen waiting for its one peer. */
export interface DataListener {
  /** What LISTEN answers (v4: all of them; v3: the first). */
  readonly addresses: TcpAddr[]
  /** Resolves with the first connection; later ones are refused (closed at once). */
  accept(signal?: AbortSignal): Promise<DataEndpoint>
  /** Stops listening; a pending accept() rejects with DATA_CONN_CLOSED. Idempotent. */
  close(): void
}

export interface ListenOptions {
  /** The IPv4 address to listen on: the session's local address (its control connection's), or '0.0.0.0'. */
  host: string
  /** 0 (default): any free port. */
  port?: number
  /** Peers allowed to connect (IPv4 text); absent: any. Others are closed at once. */
  allowFrom?: readonly string[]
}

/** NDMP carries IPv4 addresses as u_long in network order (v4 ndmp_tcp_addr.ip_addr). */
export function ipv4ToU32(host: string): number {
  if (!isIPv4(host)) throw new DataConnectionError('DATA_CONN_BAD_ADDRESS', `not an IPv4 address: ${host}`)
  return host.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
}

export function u32ToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => String(Math.floor(value / 2 ** shift) % 256)).join('.')
}

function checkAddr(a: TcpAddr): void {
  if (!isIPv4(a.host) || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
    throw new DataConnectionError('DATA_CONN_BAD_ADDRESS', `bad TCP address ${a.host}:${String(a.port)}`)
  }
}

/** The addresses a listener on `host` is reachable at: every IPv4 interface for the wildcard. */
function reachableAt(host: string, port: number): TcpAddr[] {
  if (host !== '0.0.0.0') return [{ host, port }]
  const out: TcpAddr[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4') out.push({ host: nic.address, port })
  }
  // Loopback last: a DMA on another host tries the routable ones first.
  out.sort((a, b) => Number(a.host.startsWith('127.')) - Number(b.host.startsWith('127.')))
  return out
}

/** MOVER_LISTEN / DATA_LISTEN with NDMP_ADDR_TCP. */
export async function listenTcp(options: ListenOptions): Promise<DataListener> {
  if (!isIPv4(options.host)) throw new DataConnectionError('DATA_CONN_BAD_ADDRESS', `not an IPv4 address: ${options.host}`)
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      reject(new DataConnectionError('DATA_CONN_BAD_ADDRESS', `cannot listen on ${options.host}: ${err.message}`, { cause: err }))
    })
    server.listen({ host: options.host, port: options.port ?? 0, exclusive: true }, resolve)
  })
  const bound = server.address()
  const port = typeof bound === 'object' && bound !== null ? bound.port : 0
  let accepted: Socket | null = null
  let closedErr: DataConnectionError | null = null
  const waiters: Array<(s: Socket | DataConnectionError) => void> = []
  server.on('connection', (socket: Socket) => {
    const from = socket.remoteAddress?.replace(/^::ffff:/, '') ?? ''
    if (accepted !== null || closedErr !== null || (options.allowFrom !== undefined && !options.allowFrom.includes(from))) {
      socket.destroy()
      return
    }
    accepted = socket
    server.close()
    for (const w of waiters.splice(0)) w(socket)
  })
  return {
    addresses: reachableAt(options.host, port),
    accept(signal?: AbortSignal): Promise<DataEndpoint> {
      if (accepted !== null) return Promise.resolve(new SocketEndpoint(accepted))
      if (closedErr !== null) return Promise.reject(closedErr)
      return new Promise<DataEndpoint>((resolve, reject) => {
        const onAbort = (): void => {
          reject(new DataConnectionError('DATA_CONN_ABORTED', 'accept aborted'))
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        waiters.push((s) => {
          signal?.removeEventListener('abort', onAbort)
          if (s instanceof DataConnectionError) reject(s)
          else resolve(new SocketEndpoint(s))
        })
      })
    },
    close(): void {
      if (closedErr !== null) return
      closedErr = new DataConnectionError('DATA_CONN_CLOSED', 'the listener was closed')
      server.close()
      if (accepted === null) for (const w of waiters.splice(0)) w(closedErr)
    },
  }
}

export interface ConnectOptions {
  /** Per address (default 5000 ms). */
  timeoutMs?: number
  signal?: AbortSignal
}

/** MOVER_CONNECT / DATA_CONNECT with NDMP_ADDR_TCP: tries the addresses in order. */
export async function connectTcp(addresses: readonly TcpAddr[], options: ConnectOptions = {}): Promise<DataEndpoint> {
  if (addresses.length === 0) throw new DataConnectionError('DATA_CONN_BAD_ADDRESS', 'no TCP address to connect to')
  for (const a of addresses) checkAddr(a)
  const failures: string[] = []
  for (const a of addresses) {
    if (options.signal?.aborted === true) throw new DataConnectionError('DATA_CONN_ABORTED', 'connect aborted')
    try {
      return new SocketEndpoint(await connectOne(a, options.timeoutMs ?? 5000, options.signal))
    } catch (err) {
      if (err instanceof DataConnectionError && err.code === 'DATA_CONN_ABORTED') throw err
      failures.push(`${a.host}:${String(a.port)}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  throw new DataConnectionError('DATA_CONN_REFUSED', `cannot connect: ${failures.join('; ')}`)
}

function connectOne(a: TcpAddr, timeoutMs: number, signal: AbortSignal | undefined): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host: a.host, port: a.port, allowHalfOpen: true })
    const done = (err: Error | null): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.off('error', done)
      if (err === null) {
        resolve(socket)
      } else {
        socket.destroy()
        reject(err)
      }
    }
    const onAbort = (): void => {
      done(new DataConnectionError('DATA_CONN_ABORTED', 'connect aborted'))
    }
    const timer = setTimeout(() => {
      done(new DataConnectionError('DATA_CONN_TIMEOUT', `no answer within ${String(timeoutMs)} ms`))
    }, timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.once('error', done)
    socket.once('connect', () => {
      done(null)
    })
  })
}

/**
 * NDMP_ADDR_LOCAL: the rendezvous of one session's DATA and MOVER. One listener at a time; the
 * other side's connect() pairs with it at once (no waiting: nobody listening is REFUSED).
 */
export class LocalDataPort {
  private waiting: { resolve: (ep: DataEndpoint) => void; reject: (err: DataConnectionError) => void } | null = null

  /** LISTEN with NDMP_ADDR_LOCAL. */
  listen(): DataListener {
    if (this.waiting !== null) throw new DataConnectionError('DATA_CONN_BUSY', 'a LOCAL listener already waits in this session')
    let resolve: (ep: DataEndpoint) => void = () => undefined
    let reject: (err: DataConnectionError) => void = () => undefined
    const promise = new Promise<DataEndpoint>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Nobody may ever accept (the DMA aborts the listen): that rejection is not unhandled.
    promise.catch(() => undefined)
    const slot = { resolve, reject }
    this.waiting = slot
    return {
      addresses: [],
      accept: (): Promise<DataEndpoint> => promise,
      close: (): void => {
        if (this.waiting === slot) {
          this.waiting = null
          reject(new DataConnectionError('DATA_CONN_CLOSED', 'the listener was closed'))
        }
      },
    }
  }

  /** CONNECT with NDMP_ADDR_LOCAL: the other end of the waiting listener's pipe. */
  connect(): DataEndpoint {
    const slot = this.waiting
    if (slot === null) throw new DataConnectionError('DATA_CONN_REFUSED', 'no LOCAL listener in this session')
    this.waiting = null
    const [mine, theirs] = localPipe()
    slot.resolve(theirs)
    return mine
  }

  /** Whether a LOCAL listener waits (for GET_STATE and tests). */
  get listening(): boolean {
    return this.waiting !== null
  }
}

const ports = new WeakMap<object, LocalDataPort>()

/** The LOCAL rendezvous of a session: pass the same session object from the DATA and the MOVER side. */
export function localDataPort(session: object): LocalDataPort {
  let port = ports.get(session)
  if (port === undefined) {
    port = new LocalDataPort()
    ports.set(session, port)
  }
  return port
}
