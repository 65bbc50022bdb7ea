/*
 * The client's own small RPC server (RFC 5531): the lock service answers
 * the server's callbacks (NLM GRANTED, NSM SM_NOTIFY) and PORTMAP queries
 * for its own programs. TCP (record marking, §11) and UDP on one port, as
 * the server's listener does (server/rpc/server.ts, which client/ may not
 * import); the header codecs are xdr/rpc's. Everything from outside is
 * capped: records (callbacks are small: a few netobjs of at most 1 KiB),
 * connections, calls in flight per connection, idle connections.
 */
import { createSocket } from 'node:dgram'
import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram'
import { createServer, isIPv6 } from 'node:net'
import type { Server, Socket } from 'node:net'
import { RecordReader, frameRecord, totalLength } from '../../xdr/record.ts'
import { XdrDecodeError } from '../../xdr/runtime/errors.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import type { ProcedureDef } from '../../xdr/runtime/program.ts'
import { accept_stat, auth_stat, reject_stat } from '../../xdr/rpc/constants.ts'
import type { AcceptStat } from '../../xdr/rpc/constants.ts'
import { RpcMessageError, decodeCallHeader } from '../../xdr/rpc/message.ts'
import { RPC_MISMATCH_V2, encodeAcceptedReply, encodeDeniedReply } from '../../xdr/rpc/reply.ts'

/** NLM callback arguments: a cookie, caller name, handle and owner handle of at most 1 KiB each, plus room. */
export const MAX_CALL_RECORD = 8 * 1024
const MAX_CONNECTIONS = 64
const MAX_IN_FLIGHT_PER_CONNECTION = 16
const IDLE_TIMEOUT_MS = 120_000
const BIND_ATTEMPTS = 8

export interface CallInfo {
  xid: number
  peer: { address: string; port: number }
  transport: 'tcp' | 'udp'
}

/** One procedure as served: decode, run, and how to encode its result. */
export interface ServedProc {
  readonly proc: number
  readonly name: string
  run(r: XdrReader, call: CallInfo): Promise<(w: XdrWriter) => void>
}

export interface ServedProgram {
  readonly prog: number
  readonly vers: number
  readonly procs: readonly ServedProc[]
}

/** A generated procedure and its handler as a ServedProc (the types stay checked inside). */
export function serve<A, R>(def: ProcedureDef<A, R>, fn: (args: A, call: CallInfo) => R | Promise<R>): ServedProc {
  return {
    proc: def.proc,
    name: def.name,
    async run(r, call) {
      const args = def.args.decode(r)
      r.done()
      const res = await fn(args, call)
      return w => {
        def.res.encode(w, res)
      }
    },
  }
}

export interface ServiceLog {
  warn(msg: string): void
}

/** Strip the IPv4-mapped prefix a dual-stack socket reports. */
function plain(address: string | undefined): string {
  const a = address ?? ''
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

export class RpcService {
  private readonly programs = new Map<number, Map<number, Map<number, ServedProc>>>()
  private readonly log: ServiceLog
  private readonly sockets = new Set<Socket>()
  private tcp: Server | null = null
  private udp: DgramSocket | null = null
  /** Calls answered, by procedure name (tests and stats). */
  readonly calls: Record<string, number> = {}

  constructor(programs: readonly ServedProgram[], log: ServiceLog) {
    this.log = log
    for (const p of programs) {
      let versions = this.programs.get(p.prog)
      if (versions === undefined) {
        versions = new Map()
        this.programs.set(p.prog, versions)
      }
      versions.set(p.vers, new Map(p.procs.map(x => [x.proc, x])))
    }
  }

  /** Listen on TCP and UDP at address:port (port 0: one free for both). */
  async listen(address: string, port: number): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const tcp = this.createTcp()
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject)
        tcp.listen({ host: address, port, exclusive: true }, () => {
          tcp.off('error', reject)
          resolve()
        })
      })
      const a = tcp.address()
      const bound = typeof a === 'object' && a !== null ? a.port : port
      try {
        this.udp = await this.bindUdp(address, bound)
      } catch (err) {
        await new Promise(resolve => tcp.close(resolve))
        if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < BIND_ATTEMPTS) continue
        throw err
      }
      this.tcp = tcp
      tcp.on('error', (err: Error) => {
        this.log.warn(`lock service: tcp listener error: ${err.message}`)
      })
      return bound
    }
  }

  async close(): Promise<void> {
    const tcp = this.tcp
    const udp = this.udp
    this.tcp = null
    this.udp = null
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const waits: Promise<unknown>[] = []
    if (tcp !== null) waits.push(new Promise(resolve => tcp.close(resolve)))
    if (udp !== null) waits.push(new Promise<void>(resolve => { udp.close(() => { resolve() }) }))
    await Promise.all(waits)
  }

  private createTcp(): Server {
    return createServer({ noDelay: true }, socket => {
      if (this.sockets.size >= MAX_CONNECTIONS) {
        socket.on('error', () => undefined)
        socket.destroy()
        return
      }
      this.sockets.add(socket)
      const peer = { address: plain(socket.remoteAddress), port: socket.remotePort ?? 0 }
      const records = new RecordReader(MAX_CALL_RECORD)
      let inFlight = 0
      socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy())
      socket.on('error', () => undefined)
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('data', (chunk: Buffer) => {
        let list: Buffer[]
        try {
          list = records.push(chunk)
        } catch {
          // An oversized record mark: nothing we serve takes one; the peer is broken or hostile.
          socket.destroy()
          return
        }
        for (const record of list) {
          inFlight++
          if (inFlight >= MAX_IN_FLIGHT_PER_CONNECTION) socket.pause()
          void this.dispatch(record, { peer, transport: 'tcp' }).then(reply => {
            inFlight--
            if (inFlight < MAX_IN_FLIGHT_PER_CONNECTION && socket.isPaused()) socket.resume()
            if (reply === null || socket.destroyed) return
            socket.cork()
            socket.write(frameRecord(reply, totalLength(reply)))
            for (const c of reply) socket.write(c)
            socket.uncork()
          })
        }
      })
    })
  }

  private bindUdp(address: string, port: number): Promise<DgramSocket> {
    const s = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' })
    return new Promise((resolve, reject) => {
      s.once('error', err => {
        s.close()
        reject(err)
      })
      s.bind({ address, port, exclusive: true }, () => {
        s.removeAllListeners('error')
        s.on('error', () => undefined)
        s.on('message', (msg: Buffer, from: RemoteInfo) => {
          if (msg.length > MAX_CALL_RECORD) return
          void this.dispatch(msg, { peer: { address: plain(from.address), port: from.port }, transport: 'udp' }).then(reply => {
            if (reply !== null && this.udp === s) s.send(Buffer.concat(reply), from.port, from.address)
          })
        })
        resolve(s)
      })
    })
  }

  /** One call record → its reply's chunks, or null when nothing is to be sent. Never rejects. */
  private async dispatch(record: Buffer, from: Omit<CallInfo, 'xid'>): Promise<Buffer[] | null> {
    const r = new XdrReader(record)
    let xid: number
    let prog: number
    let vers: number
    let procNo: number
    try {
      const h = decodeCallHeader(r)
      xid = h.xid
      prog = h.prog
      vers = h.vers
      procNo = h.proc
    } catch (err) {
      if (!(err instanceof RpcMessageError)) return null
      if (err.code === 'RPC_VERSION_MISMATCH') return encode(w => { encodeDeniedReply(w, err.xid, RPC_MISMATCH_V2) })
      if (err.code === 'RPC_BAD_CRED' || err.code === 'RPC_BAD_VERF') {
        const stat = err.code === 'RPC_BAD_CRED' ? auth_stat.AUTH_BADCRED : auth_stat.AUTH_BADVERF
        return encode(w => { encodeDeniedReply(w, err.xid, { stat: reject_stat.AUTH_ERROR, auth_stat: stat }) })
      }
      return null
    }
    const versions = this.programs.get(prog)
    if (versions === undefined) return accepted(xid, accept_stat.PROG_UNAVAIL)
    const procs = versions.get(vers)
    if (procs === undefined) {
      const known = [...versions.keys()]
      return accepted(xid, accept_stat.PROG_MISMATCH, { low: Math.min(...known), high: Math.max(...known) })
    }
    const proc = procs.get(procNo)
    if (proc === undefined) return accepted(xid, accept_stat.PROC_UNAVAIL)
    let body: (w: XdrWriter) => void
    try {
      body = await proc.run(r, { ...from, xid })
    } catch (err) {
      if (err instanceof XdrDecodeError) return accepted(xid, accept_stat.GARBAGE_ARGS)
      this.log.warn(`lock service: ${proc.name} failed: ${(err as Error).message}`)
      return accepted(xid, accept_stat.SYSTEM_ERR)
    }
    this.calls[proc.name] = (this.calls[proc.name] ?? 0) + 1
    return encode(w => {
      encodeAcceptedReply(w, xid, accept_stat.SUCCESS)
      body(w)
    })
  }
}

function accepted(xid: number, stat: AcceptStat, mismatch?: { low: number; high: number }): Buffer[] {
  return encode(w => { encodeAcceptedReply(w, xid, stat, mismatch) })
}

function encode(fn: (w: XdrWriter) => void): Buffer[] {
  const w = new XdrWriter(128)
  fn(w)
  return w.finish()
}
