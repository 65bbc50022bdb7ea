/*
 * PORTMAP v2 (RFC 1833 §3): where a program listens. The Linux mount command
 * asks rpcbind on port 111 for MOUNT and NFS; our server also answers
 * PORTMAP on its own port, so `portmapPort: <server port>` works.
 */
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PORT, PMAP_PROG } from '../xdr/generated/portmap.ts'
import type { pmapnode } from '../xdr/generated/portmap.ts'
import type { ProcedureRef } from './rpc/call.ts'
import { connectTransport } from './rpc/connect.ts'
import type { Protocol } from './rpc/connect.ts'
import { RpcError } from './rpc/errors.ts'
import { atEndpoint, programName } from './errors.ts'
import type { RetryPolicy } from './rpc/transport.ts'
import { bump } from './stats.ts'

const V2 = PMAP_PROG.versions.PMAP_VERS

export interface PortmapQuery {
  host: string
  /** The portmapper's port (111 by default). */
  portmapPort?: number
  protocol: Protocol
  policy?: Partial<RetryPolicy>
  /** Counts calls by short name (GETPORT, DUMP). */
  counts?: Record<string, number>
  /** The local address to call from. */
  localAddress?: string
}

export interface PortMapping {
  prog: number
  vers: number
  protocol: Protocol | number
  port: number
}

type Caller = <A, R>(p: ProcedureRef<A, R> & { name: string }, args: A) => Promise<R>

/** Connect, call, close; every failure names the portmapper asked (`portmapper at 127.0.0.1:111: connection refused`). */
async function withPortmapper<T>(q: PortmapQuery, fn: (call: Caller) => Promise<T>): Promise<T> {
  const port = q.portmapPort ?? PMAP_PORT
  try {
    const t = await connectTransport(q.host, port, {
      protocol: q.protocol,
      cred: 'none',
      ...(q.policy === undefined ? {} : { policy: q.policy }),
      ...(q.localAddress === undefined ? {} : { localAddress: q.localAddress }),
    })
    try {
      return await fn((p, args) => {
        if (q.counts !== undefined) bump(q.counts, p.name.replace('PMAPPROC_', ''))
        return t.call(PMAP_PROG.prog, V2.vers, p, args)
      })
    } finally {
      await t.close()
    }
  } catch (err) {
    throw atEndpoint('portmapper', q.host, port, q.protocol, err)
  }
}

/** PMAPPROC_GETPORT; a program not registered is RPC_PROG_NOT_REGISTERED (the server answered 0). */
export function getPort(q: PortmapQuery, prog: number, vers: number): Promise<number> {
  const prot = q.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP
  return withPortmapper(q, async call => {
    const port = await call(V2.procs.PMAPPROC_GETPORT, { prog, vers, prot, port: 0 })
    if (port === 0) throw new RpcError('RPC_PROG_NOT_REGISTERED', `${programName(prog)} version ${String(vers)} over ${q.protocol} is not registered`)
    return port
  })
}

/** PMAPPROC_DUMP: everything registered (rpcinfo -p). */
export async function dumpPorts(q: PortmapQuery): Promise<PortMapping[]> {
  const list: pmapnode[] = await withPortmapper(q, call => call(V2.procs.PMAPPROC_DUMP, undefined))
  return list.map(n => ({
    prog: n.map.prog,
    vers: n.map.vers,
    protocol: n.map.prot === IPPROTO_TCP ? 'tcp' : n.map.prot === IPPROTO_UDP ? 'udp' : n.map.prot,
    port: n.map.port,
  }))
}
