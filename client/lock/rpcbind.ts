/*
 * Registering the lock service with the system's rpcbind (127.0.0.1:111,
 * PMAP v2 SET/UNSET, RFC 1833 §3.2), when no lockPortmapPort is given:
 * a server finds a host's NLM and NSM by asking the portmapper on 111.
 * Only when it is safe: an rpcbind answers, and no live program holds
 * NLM v4 or NSM v1 there (a kernel lockd, rpc.statd, or a lock server on
 * this host such as NFS-Ganesha); a mapping whose port answers nothing is
 * a dead process's and is replaced. Otherwise nothing is registered and
 * the log says why: blocking locks then rely on polling (LOCK re-sent),
 * and a server's SM_NOTIFY does not reach us.
 */
import { PMAP_PORT, PMAP_PROG, IPPROTO_TCP, IPPROTO_UDP } from '../../xdr/generated/portmap.ts'
import { xdr_void } from '../../xdr/runtime/codec.ts'
import { connectTransport } from '../rpc/connect.ts'
import type { RpcTransport } from '../rpc/transport.ts'
import type { ServiceLog } from './rpc-service.ts'

const V2 = PMAP_PROG.versions.PMAP_VERS
const PROBE = { timeoutMs: 2000, retrans: 0, hard: false }

export interface Registration {
  unregister(): Promise<void>
}

async function open(host: string, port: number, localAddress: string | undefined): Promise<RpcTransport> {
  return connectTransport(host, port, { protocol: 'tcp', cred: 'none', policy: PROBE, ...(localAddress === undefined ? {} : { localAddress }) })
}

/** Whether something answers a NULL call of (prog, vers) at host:port over TCP (any RPC reply counts). */
async function answers(host: string, port: number, prog: number, vers: number): Promise<boolean> {
  let t: RpcTransport
  try {
    t = await open(host, port, undefined)
  } catch {
    return false
  }
  try {
    await t.call(prog, vers, { proc: 0, args: xdr_void, res: xdr_void }, undefined)
    return true
  } catch (err) {
    return (err as { code?: string }).code !== 'RPC_TIMEOUT' && (err as { code?: string }).code !== 'RPC_CONNECTION_CLOSED'
  } finally {
    await t.close()
  }
}

/** Register (prog, vers) pairs on TCP and UDP at port; null (with the reason logged) when it is not safe or possible. */
export async function registerWithRpcbind(programs: readonly (readonly [number, number])[], port: number, log: ServiceLog, host = '127.0.0.1'): Promise<Registration | null> {
  const what = programs.map(([p, v]) => `${String(p)} v${String(v)}`).join(', ')
  let t: RpcTransport
  try {
    t = await open(host, PMAP_PORT, undefined)
    await t.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_NULL, undefined)
  } catch (err) {
    log.warn(`lock service: no rpcbind answers on ${host}:${String(PMAP_PORT)} (${(err as Error).message}); ${what} not registered: servers cannot call back unless lockPortmapPort is set`)
    return null
  }
  try {
    const stale: (readonly [number, number])[] = []
    for (const [prog, vers] of programs) {
      for (const prot of [IPPROTO_TCP, IPPROTO_UDP]) {
        const held = await t.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_GETPORT, { prog, vers, prot, port: 0 })
        if (held === 0 || held === port) continue
        if (await answers(host, held, prog, vers)) {
          log.warn(`lock service: the system rpcbind maps program ${String(prog)} v${String(vers)} to port ${String(held)}, where another process answers (a lockd or statd on this host); ${what} not registered: servers cannot call back unless lockPortmapPort is set`)
          return null
        }
        if (!stale.some(([p, v]) => p === prog && v === vers)) stale.push([prog, vers])
      }
    }
    for (const [prog, vers] of stale) await t.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_UNSET, { prog, vers, prot: 0, port: 0 })
    const done: (readonly [number, number])[] = []
    for (const [prog, vers] of programs) {
      for (const prot of [IPPROTO_TCP, IPPROTO_UDP]) {
        if (await t.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_SET, { prog, vers, prot, port })) continue
        for (const [p, v] of [...done, [prog, vers] as const]) await t.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_UNSET, { prog: p, vers: v, prot: 0, port: 0 }).catch(() => false)
        log.warn(`lock service: the system rpcbind refused to register program ${String(prog)} v${String(vers)}; ${what} not registered`)
        return null
      }
      done.push([prog, vers])
    }
  } catch (err) {
    log.warn(`lock service: registering ${what} with the system rpcbind failed: ${(err as Error).message}`)
    return null
  } finally {
    await t.close()
  }
  return {
    async unregister() {
      let u: RpcTransport
      try {
        u = await open(host, PMAP_PORT, undefined)
      } catch {
        return
      }
      try {
        for (const [prog, vers] of programs) {
          // Only mappings still ours: another service may have taken them over since.
          const now = await u.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_GETPORT, { prog, vers, prot: IPPROTO_TCP, port: 0 })
          if (now === port) await u.call(PMAP_PROG.prog, V2.vers, V2.procs.PMAPPROC_UNSET, { prog, vers, prot: 0, port: 0 })
        }
      } catch {
        // best effort: rpcbind drops nothing by itself, but a dead port is replaced by the next service
      } finally {
        await u.close()
      }
    },
  }
}
