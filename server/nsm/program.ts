/*
 * The NSM program (100024 v1, XNFS 3W ch. 11) over a StatusMonitor. As
 * rpc.statd does, only callers on this host may change what is monitored
 * (SM_MON, SM_UNMON, SM_UNMON_ALL, SM_SIMU_CRASH): a lock manager asks its
 * own host's monitor. SM_STAT and SM_NOTIFY come from anywhere.
 */
import { SM_PROG, sm_res } from '../../xdr/generated/nsm.ts'
import type { Logger } from '../logger.ts'
import { defineProgram } from '../rpc/program.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import type { StatusMonitor } from './monitor.ts'

function isLoopback(call: CallContext): boolean {
  const a = call.peer.address
  return a === '::1' || a.startsWith('127.')
}

export function createNsmProgram(monitor: StatusMonitor, log: Logger): RpcProgram {
  const refuse = (what: string, call: CallContext): void => {
    log.warn({ peer: call.peer.address }, `status monitor: ${what} from another host refused`)
  }
  return defineProgram(
    SM_PROG,
    'SM_VERS',
    {
      SM_NULL: () => undefined,
      // XNFS: SM_STAT returns the state of the local NSM.
      SM_STAT: () => ({ res_stat: sm_res.stat_succ, state: monitor.state }),
      SM_MON: async (m, call) => {
        if (!isLoopback(call)) {
          refuse('SM_MON', call)
          return { res_stat: sm_res.stat_fail, state: monitor.state }
        }
        const ok = await monitor.register(m)
        if (!ok) log.warn({ mon_name: m.mon_id.mon_name }, 'status monitor: SM_MON refused (list full or bad name)')
        return { res_stat: ok ? sm_res.stat_succ : sm_res.stat_fail, state: monitor.state }
      },
      SM_UNMON: async (id, call) => {
        if (isLoopback(call)) await monitor.unregister(id)
        else refuse('SM_UNMON', call)
        return { state: monitor.state }
      },
      SM_UNMON_ALL: async (id, call) => {
        if (isLoopback(call)) await monitor.unregisterAll(id)
        else refuse('SM_UNMON_ALL', call)
        return { state: monitor.state }
      },
      SM_SIMU_CRASH: async (_, call) => {
        if (isLoopback(call)) await monitor.simulateCrash()
        else refuse('SM_SIMU_CRASH', call)
        return undefined
      },
      SM_NOTIFY: (s, call) => {
        monitor.peerRestarted(s.mon_name, s.state, call.peer.address)
        return undefined
      },
    },
    // A retransmitted SIMU_CRASH must not crash us twice.
    { nonIdempotent: ['SM_SIMU_CRASH'] },
  )
}
