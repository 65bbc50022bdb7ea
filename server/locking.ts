/*
 * File locking for the server: the status monitor (server/nsm) and the lock
 * manager (server/nlm) started together, because each needs the other —
 * the lock manager has the monitor watch its clients, and a client's restart
 * the monitor hears of frees that client's locks. On by default: NFSv3
 * clients mount without `nolock` only when NLM answers (ANCHORS row 13).
 */
import type { Logger } from './logger.ts'
import type { Nfs3Host } from './nfs3/host.ts'
import { createLockManager } from './nlm/index.ts'
import type { LockManager, NlmOptions } from './nlm/index.ts'
import { portmappedCaller } from './nlm/peer.ts'
import { StatusMonitor } from './nsm/monitor.ts'
import type { StatusMonitorOptions } from './nsm/monitor.ts'
import { createNsmProgram } from './nsm/program.ts'
import type { RpcProgram } from './rpc/program.ts'

export interface LockingOptions {
  /** The status monitor: our name, where peers' portmappers listen (default 111), retry bounds. */
  nsm?: Omit<StatusMonitorOptions, 'stateDir' | 'log'>
  /** The lock manager: grace period, limits, callback retries. */
  nlm?: Partial<NlmOptions>
}

export interface Locking {
  readonly nsm: StatusMonitor
  readonly nlm: LockManager
  readonly programs: readonly RpcProgram[]
  /** Tell every client we monitored that we restarted (after we listen: they reclaim at once). */
  announce(): void
  close(): Promise<void>
}

export async function openLocking(o: LockingOptions, host: Nfs3Host, stateDir: string, log: Logger): Promise<Locking> {
  const nsm = await StatusMonitor.open({ ...o.nsm, stateDir, log: log.child({ component: 'nsm' }) })
  const nlm = createLockManager({
    host,
    monitor: nsm,
    caller: portmappedCaller(o.nsm?.peerPortmapPort ?? 111),
    expected: nsm.known().map((k) => k.name),
    log,
    ...(o.nlm === undefined ? {} : { options: o.nlm }),
  })
  // XNFS ch. 11: a client's NSM says it restarted; what the old instance held is gone.
  const stop = nsm.onPeerRestart((name) => {
    nlm.service.freeAll(name)
  })
  return {
    nsm,
    nlm,
    programs: [nlm.program, createNsmProgram(nsm, log.child({ component: 'nsm' }))],
    announce() {
      void nsm.notifyAll()
    },
    async close() {
      stop()
      nlm.close()
      await nsm.close()
    },
  }
}
