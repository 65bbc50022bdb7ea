/*
 * Registration with the host's own rpcbind/portmapper (RFC 1833 §3.2), for
 * hosts where one already owns port 111: PMAPPROC_SET of every version of
 * MOUNT and NFS on TCP and UDP at our port (after PMAPPROC_UNSET of stale
 * mappings a previous run left), and PMAPPROC_UNSET on close. A tiny
 * one-connection RPC caller of its own: server/ may not import client/.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { RecordReader, frameRecord, totalLength } from '../xdr/record.ts'
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PORT, PMAP_PROG } from '../xdr/generated/portmap.ts'
import type { mapping } from '../xdr/generated/portmap.ts'
import type { Codec } from '../xdr/runtime/codec.ts'
import { XdrReader } from '../xdr/runtime/reader.ts'
import { XdrWriter } from '../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH } from '../xdr/rpc/auth.ts'
import { encodeCallHeader } from '../xdr/rpc/message.ts'
import { decodeReplyHeader } from '../xdr/rpc/reply.ts'
import type { Logger } from './logger.ts'

const V2 = PMAP_PROG.versions.PMAP_VERS
const DEFAULT_TIMEOUT_MS = 2000

export interface RpcbindTarget {
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

/** One TCP connection to a portmapper, calls made one at a time. */
class PortmapperConnection {
  private readonly socket: Socket
  private readonly reader = new RecordReader(1024 * 1024)
  private readonly timeoutMs: number
  private xid = (Math.random() * 0x7fff_ffff) >>> 0
  private waiter: ((record: Buffer | Error) => void) | null = null

  private constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket
    this.timeoutMs = timeoutMs
    socket.on('data', (chunk: Buffer) => {
      let records: Buffer[]
      try {
        records = this.reader.push(chunk)
      } catch (err) {
        this.settle(err as Error)
        return
      }
      for (const r of records) this.settle(r)
    })
    socket.on('error', (err) => {
      this.settle(err)
    })
    socket.on('close', () => {
      this.settle(new RpcbindError('RPCBIND_UNREACHABLE', 'connection to the portmapper closed'))
    })
  }

  static open(t: Required<RpcbindTarget>): Promise<PortmapperConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: t.host, port: t.port })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `no portmapper answers at ${t.host}:${String(t.port)} (timeout)`))
      }, t.timeoutMs)
      socket.once('error', (err) => {
        clearTimeout(timer)
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `no portmapper at ${t.host}:${String(t.port)}: ${err.message}`, { cause: err }))
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new PortmapperConnection(socket, t.timeoutMs))
      })
    })
  }

  async call<A, R>(p: { proc: number; args: Codec<A>; res: Codec<R> }, args: A): Promise<R> {
    const xid = (this.xid = (this.xid + 1) >>> 0)
    const w = new XdrWriter(128)
    encodeCallHeader(w, { xid, prog: PMAP_PROG.prog, vers: V2.vers, proc: p.proc, cred: AUTH_NONE_AUTH, verf: AUTH_NONE_AUTH })
    p.args.encode(w, args)
    const chunks = w.finish()
    const record = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null
        reject(new RpcbindError('RPCBIND_UNREACHABLE', `portmapper did not answer within ${String(this.timeoutMs)} ms`))
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
      if (h.kind !== 'SUCCESS') throw new Error(`portmapper answered ${h.kind}`)
      return p.res.decode(r)
    } catch (err) {
      throw new RpcbindError('RPCBIND_BAD_REPLY', `bad portmapper reply: ${(err as Error).message}`, { cause: err })
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

function target(t: RpcbindTarget): Required<RpcbindTarget> {
  return { host: t.host ?? '127.0.0.1', port: t.port ?? PMAP_PORT, timeoutMs: t.timeoutMs ?? DEFAULT_TIMEOUT_MS }
}

async function withPortmapper<T>(t: RpcbindTarget, fn: (c: PortmapperConnection) => Promise<T>): Promise<T> {
  const c = await PortmapperConnection.open(target(t))
  try {
    return await fn(c)
  } finally {
    c.close()
  }
}

/** Whether a portmapper answers PMAPPROC_NULL at the target (127.0.0.1:111 by default). */
export async function rpcbindAnswers(t: RpcbindTarget = {}): Promise<boolean> {
  try {
    await withPortmapper(t, (c) => c.call(V2.procs.PMAPPROC_NULL, undefined))
    return true
  } catch {
    return false
  }
}

export interface RpcbindRegistration {
  readonly mappings: readonly mapping[]
  /** PMAPPROC_UNSET of every (prog, vers) registered; errors are logged, not thrown. */
  unregister(): Promise<void>
}

/**
 * Every version of every program on TCP and UDP at `port`. Stale mappings of
 * the same (prog, vers) are removed first: SET refuses to replace one.
 */
export async function registerWithRpcbind(
  programs: Iterable<{ prog: number; versions: ReadonlyMap<number, unknown> }>,
  port: number,
  log: Logger,
  t: RpcbindTarget = {},
): Promise<RpcbindRegistration> {
  const pairs: [number, number][] = []
  for (const p of programs) for (const vers of p.versions.keys()) pairs.push([p.prog, vers])
  const mappings: mapping[] = pairs.flatMap(([prog, vers]) => [
    { prog, vers, prot: IPPROTO_TCP, port },
    { prog, vers, prot: IPPROTO_UDP, port },
  ])
  // One call at a time: the connection matches replies to the single waiting call.
  const unsetAll = async (c: PortmapperConnection): Promise<void> => {
    for (const [prog, vers] of pairs) await c.call(V2.procs.PMAPPROC_UNSET, { prog, vers, prot: 0, port: 0 })
  }
  await withPortmapper(t, async (c) => {
    await unsetAll(c)
    for (const m of mappings) {
      if (!(await c.call(V2.procs.PMAPPROC_SET, m))) {
        await unsetAll(c).catch(() => undefined)
        throw new RpcbindError('RPCBIND_REFUSED', `the portmapper refused to register program ${String(m.prog)} version ${String(m.vers)} on port ${String(port)}`)
      }
    }
  })
  log.info({ port, programs: pairs.map(([p, v]) => `${String(p)}/${String(v)}`) }, 'registered with the system rpcbind')
  return {
    mappings,
    async unregister() {
      try {
        await withPortmapper(t, unsetAll)
        log.info({ port }, 'unregistered from the system rpcbind')
      } catch (err) {
        log.warn({ err }, 'could not unregister from the system rpcbind')
      }
    },
  }
}
