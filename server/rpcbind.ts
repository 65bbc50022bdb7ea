/*
 * Registration with the host's own rpcbind (RFC 1833), for hosts where one
 * already owns port 111: every version of MOUNT and NFS on tcp and udp at
 * our port, after removing stale mappings a previous run left (SET refuses
 * to replace one), and removal again on close.
 *
 * Like libtirpc's rpcb_set, we speak rpcbind v3 over its local socket
 * (/run/rpcbind.sock): rpcbind learns our uid from the socket, and root may
 * replace mappings any owner made. Over 127.0.0.1:111 (PMAP v2, the
 * fallback) rpcbind only lets the owner of a mapping remove it.
 * A tiny one-connection RPC caller of its own: server/ may not import client/.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { RecordReader, frameRecord, totalLength } from '../xdr/record.ts'
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PORT, PMAP_PROG } from '../xdr/generated/portmap.ts'
import type { Codec } from '../xdr/runtime/codec.ts'
import { xdr_bool, xdr_void } from '../xdr/runtime/codec.ts'
import { XdrReader } from '../xdr/runtime/reader.ts'
import { XdrWriter } from '../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH } from '../xdr/rpc/auth.ts'
import { encodeCallHeader } from '../xdr/rpc/message.ts'
import { decodeReplyHeader } from '../xdr/rpc/reply.ts'
import type { Logger } from './logger.ts'

const PMAP2 = PMAP_PROG.versions.PMAP_VERS
const DEFAULT_TIMEOUT_MS = 2000
export const RPCBIND_SOCKET = '/run/rpcbind.sock'

/** RFC 1833 §2.1: struct rpcb (rpcbind versions 3 and 4). */
interface Rpcb {
  prog: number
  vers: number
  netid: string
  /** Universal address: "h1.h2.h3.h4.p1.p2" for IPv4. */
  addr: string
  owner: string
}
const rpcb: Codec<Rpcb> = {
  encode(w, v) {
    w.u32(v.prog)
    w.u32(v.vers)
    w.string(v.netid)
    w.string(v.addr)
    w.string(v.owner)
  },
  decode(r) {
    return { prog: r.u32(), vers: r.u32(), netid: r.string(), addr: r.string(), owner: r.string() }
  },
}
const RPCBVERS3 = 3
const RPCBPROC_SET = { proc: 1, args: rpcb, res: xdr_bool }
const RPCBPROC_UNSET = { proc: 2, args: rpcb, res: xdr_bool }

export interface RpcbindTarget {
  /** The local socket tried first; '' skips it. */
  socketPath?: string
  host?: string
  port?: number
  timeoutMs?: number
}

export class RpcbindError extends Error {
  readonly code: 'RPCBIND_UNREACHABLE' | 'RPCBIND_REFUSED' | 'RPCBIND_BAD_REPLY'
  constructor(code: RpcbindError['code'], message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RpcbindError'
    this.code = code
  }
}

type Endpoint = { path: string } | { host: string; port: number }
const describe = (e: Endpoint): string => ('path' in e ? e.path : `${e.host}:${String(e.port)}`)

/** One stream connection to rpcbind, calls made one at a time. */
class RpcbindConnection {
  private readonly socket: Socket
  private readonly reader = new RecordReader(1024 * 1024)
  private readonly timeoutMs: number
  private xid = (Math.random() * 0x7fff_ffff) >>> 0
  private waiter: ((record: Buffer | Error) => void) | null = null

  private constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket
    this.timeoutMs = timeoutMs
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const r of this.reader.push(chunk)) this.settle(r)
      } catch (err) {
        this.settle(err as Error)
      }
    })
    socket.on('error', (err) => {
      this.settle(err)
    })
    socket.on('close', () => {
      this.settle(new RpcbindError('RPCBIND_UNREACHABLE', 'connection to rpcbind closed'))
    })
  }

  static open(at: Endpoint, timeoutMs: number): Promise<RpcbindConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(at)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `no rpcbind answers at ${describe(at)} (timeout)`))
      }, timeoutMs)
      socket.once('error', (err) => {
        clearTimeout(timer)
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `no rpcbind at ${describe(at)}: ${err.message}`, { cause: err }))
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new RpcbindConnection(socket, timeoutMs))
      })
    })
  }

  async call<A, R>(vers: number, p: { proc: number; args: Codec<A>; res: Codec<R> }, args: A): Promise<R> {
    const xid = (this.xid = (this.xid + 1) >>> 0)
    const w = new XdrWriter(128)
    encodeCallHeader(w, { xid, prog: PMAP_PROG.prog, vers, proc: p.proc, cred: AUTH_NONE_AUTH, verf: AUTH_NONE_AUTH })
    p.args.encode(w, args)
    const chunks = w.finish()
    const record = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `rpcbind did not answer within ${String(this.timeoutMs)} ms`))
      }, this.timeoutMs)
      this.waiter = (r) => {
        clearTimeout(timer)
        if (r instanceof Error) reject(r)
        else resolve(r)
      }
      this.socket.write(Buffer.concat([frameRecord(chunks, totalLength(chunks)), ...chunks]))
    })
    const r = new XdrReader(record)
    try {
      const h = decodeReplyHeader(r)
      if (h.xid !== xid) throw new Error(`reply xid ${String(h.xid)} for call ${String(xid)}`)
      if (h.kind !== 'SUCCESS') throw new Error(`rpcbind answered ${h.kind}`)
      return p.res.decode(r)
    } catch (err) {
      throw new RpcbindError('RPCBIND_BAD_REPLY', `bad rpcbind reply: ${(err as Error).message}`, { cause: err })
    }
  }

  close(): void {
    this.socket.destroy()
  }

  private settle(r: Buffer | Error): void {
    const w = this.waiter
    this.waiter = null
    w?.(r)
  }
}

/** The operations registration needs, over either protocol. */
interface Registrar {
  unset(prog: number, vers: number): Promise<boolean>
  set(prog: number, vers: number, proto: 'tcp' | 'udp', port: number): Promise<boolean>
}

function rpcbRegistrar(c: RpcbindConnection): Registrar {
  return {
    // An empty netid removes the mapping on every transport (rpcbind map_unset).
    unset: (prog, vers) => c.call(RPCBVERS3, RPCBPROC_UNSET, { prog, vers, netid: '', addr: '', owner: '' }),
    set: (prog, vers, proto, port) =>
      c.call(RPCBVERS3, RPCBPROC_SET, { prog, vers, netid: proto, addr: `0.0.0.0.${String(port >> 8)}.${String(port & 0xff)}`, owner: '' }),
  }
}

function pmapRegistrar(c: RpcbindConnection): Registrar {
  return {
    unset: (prog, vers) => c.call(PMAP2.vers, PMAP2.procs.PMAPPROC_UNSET, { prog, vers, prot: 0, port: 0 }),
    set: (prog, vers, proto, port) => c.call(PMAP2.vers, PMAP2.procs.PMAPPROC_SET, { prog, vers, prot: proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, port }),
  }
}

/** The local socket with rpcbind v3 when it accepts us, else PMAP v2 over TCP. */
async function withRegistrar<T>(t: RpcbindTarget, fn: (r: Registrar) => Promise<T>): Promise<T> {
  const timeoutMs = t.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const socketPath = t.socketPath ?? RPCBIND_SOCKET
  let c: RpcbindConnection | null = null
  if (socketPath !== '') c = await RpcbindConnection.open({ path: socketPath }, timeoutMs).catch(() => null)
  const registrar = c === null ? null : rpcbRegistrar(c)
  if (c === null) c = await RpcbindConnection.open({ host: t.host ?? '127.0.0.1', port: t.port ?? PMAP_PORT }, timeoutMs)
  try {
    return await fn(registrar ?? pmapRegistrar(c))
  } finally {
    c.close()
  }
}

/** Whether a portmapper answers PMAPPROC_NULL over TCP (127.0.0.1:111 by default). */
export async function rpcbindAnswers(t: RpcbindTarget = {}): Promise<boolean> {
  try {
    const c = await RpcbindConnection.open({ host: t.host ?? '127.0.0.1', port: t.port ?? PMAP_PORT }, t.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    try {
      await c.call(PMAP2.vers, { proc: 0, args: xdr_void, res: xdr_void }, undefined)
      return true
    } finally {
      c.close()
    }
  } catch {
    return false
  }
}

export interface RpcbindRegistration {
  /** (prog, vers) pairs registered on tcp and udp. */
  readonly programs: readonly (readonly [number, number])[]
  readonly port: number
  /** Unset every (prog, vers) registered; errors are logged, not thrown. */
  unregister(): Promise<void>
}

export async function registerWithRpcbind(
  programs: Iterable<{ prog: number; versions: ReadonlyMap<number, unknown> }>,
  port: number,
  log: Logger,
  t: RpcbindTarget = {},
): Promise<RpcbindRegistration> {
  const pairs: [number, number][] = []
  for (const p of programs) for (const vers of p.versions.keys()) pairs.push([p.prog, vers])
  // One call at a time: a connection matches replies to its single waiting call.
  const unsetAll = async (r: Registrar): Promise<void> => {
    for (const [prog, vers] of pairs) await r.unset(prog, vers)
  }
  await withRegistrar(t, async (r) => {
    await unsetAll(r)
    for (const [prog, vers] of pairs) {
      for (const proto of ['tcp', 'udp'] as const) {
        if (await r.set(prog, vers, proto, port)) continue
        await unsetAll(r).catch(() => undefined)
        throw new RpcbindError('RPCBIND_REFUSED', `rpcbind refused to register program ${String(prog)} version ${String(vers)} on ${proto} port ${String(port)} (a mapping owned by another user?)`)
      }
    }
  })
  log.info({ port, programs: pairs.map(([p, v]) => `${String(p)}/${String(v)}`) }, 'registered with the system rpcbind')
  return {
    programs: pairs,
    port,
    async unregister() {
      try {
        await withRegistrar(t, unsetAll)
        log.info({ port }, 'unregistered from the system rpcbind')
      } catch (err) {
        log.warn({ err }, 'could not unregister from the system rpcbind')
      }
    },
  }
}
