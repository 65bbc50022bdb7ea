/*
 * Where a server's NLM v4 is. As for MOUNT (session.ts findPorts): the
 * nlmport option when given; else a server named by its NFS port alone
 * (tsnfs serves PORTMAP beside NFS on its one port) is asked at that port
 * first, and the portmapper on portmapPort (111) after. The portmapper
 * that answered is remembered: the server's NSM is asked there too (to
 * SM_NOTIFY it when we restart).
 */
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { RpcError } from '../rpc/errors.ts'
import { getPort } from '../portmap.ts'
import type { ResolvedOptions } from '../options.ts'

export interface NlmEndpoint {
  port: number
  /** The portmappers that may know the server's NSM, likeliest first: the one that answered for NLM, else every candidate. */
  portmapPorts: number[]
}

export async function findNlm(host: string, opts: ResolvedOptions): Promise<NlmEndpoint> {
  const candidates = opts.nfsport !== undefined && opts.nfsport !== opts.portmapPort ? [opts.nfsport, opts.portmapPort] : [opts.portmapPort]
  const nlmport = opts.lock.nlmport
  if (nlmport !== undefined) return { port: nlmport, portmapPorts: candidates }
  const errors: RpcError[] = []
  for (const portmapPort of candidates) {
    const q = {
      host,
      portmapPort,
      protocol: opts.proto,
      policy: { ...opts.policy, hard: false, retrans: 0, timeoutMs: Math.min(opts.policy.timeoutMs, 5000) },
      ...(opts.clientAddress === undefined ? {} : { localAddress: opts.clientAddress }),
    }
    try {
      return { port: await getPort(q, NLM_PROG.prog, NLM_PROG.versions.NLM4_VERS.vers), portmapPorts: [portmapPort] }
    } catch (err) {
      if (!(err instanceof RpcError)) throw err
      errors.push(err)
    }
  }
  const last = errors[errors.length - 1]
  throw new RpcError(last?.code ?? 'RPC_PROG_NOT_REGISTERED', `NLM v4 of ${host} not found: ${errors.map(e => e.message).join('; ')}`, { cause: last })
}
