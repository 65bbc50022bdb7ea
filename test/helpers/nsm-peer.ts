/*
 * A peer host's status monitor for locking tests: on its own loopback
 * address, one RpcServer answers PMAP GETPORT (for its NSM) and SM_NOTIFY,
 * which it records. Several "hosts" share the machine by address.
 */
import type { Test } from 'tap'
import { silentLogger } from '../../server/logger.ts'
import { createPortmapProgram } from '../../server/portmap/program.ts'
import { PortRegistry } from '../../server/portmap/registry.ts'
import { defineProgram } from '../../server/rpc/program.ts'
import type { RpcProgram } from '../../server/rpc/program.ts'
import { RpcServer } from '../../server/rpc/server.ts'
import { SM_PROG, sm_res } from '../../xdr/generated/nsm.ts'

export interface Notification {
  mon_name: string
  state: number
  from: string
}

export interface FakeNsmPeer {
  address: string
  /** Its portmapper's port (and its NSM's). */
  port: number
  registry: PortRegistry
  notifications: Notification[]
  /** Resolves once n notifications have arrived (rejects after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<Notification[]>
  close(): Promise<void>
}

/** `extra`: more programs the host serves and its portmapper names (its lock manager, in NLM tests). */
export async function startFakeNsmPeer(t: Test, address: string, port = 0, extra: readonly RpcProgram[] = []): Promise<FakeNsmPeer> {
  const registry = new PortRegistry()
  const notifications: Notification[] = []
  let wake: (() => void) | null = null
  const nsm = defineProgram(SM_PROG, 'SM_VERS', {
    SM_NULL: () => undefined,
    SM_STAT: () => ({ res_stat: sm_res.stat_succ, state: 1 }),
    SM_MON: () => ({ res_stat: sm_res.stat_succ, state: 1 }),
    SM_UNMON: () => ({ state: 1 }),
    SM_UNMON_ALL: () => ({ state: 1 }),
    SM_SIMU_CRASH: () => undefined,
    SM_NOTIFY: (s, call) => {
      notifications.push({ mon_name: s.mon_name, state: s.state, from: call.peer.address })
      wake?.()
      return undefined
    },
  })
  const server = new RpcServer({ programs: [createPortmapProgram(registry), nsm, ...extra], logger: silentLogger })
  const listening = await server.listen({ port, host: address })
  registry.registerAll([nsm, ...extra], listening.port)
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await server.close()
  }
  t.teardown(close)
  return {
    address,
    port: listening.port,
    registry,
    notifications,
    async waitFor(n, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs
      while (notifications.length < n) {
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`${String(notifications.length)} of ${String(n)} SM_NOTIFY calls arrived at ${address} within ${String(timeoutMs)} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
      return notifications
    },
    close,
  }
}
