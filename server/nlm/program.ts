/*
 * NLM, program 100021, versions 1, 3 (XNFS 3W ch. 10) and 4 (RFC 1813 §6):
 * the wire forms converted (convert.ts) and handed to the one lock manager
 * (service.ts). The _MSG procedures answer with a separate _RES call to the
 * caller's own lock manager (the asynchronous forms macOS's lockd uses); their
 * own reply is empty.
 */
import type {
  nlm4_cancargs,
  nlm4_lockargs,
  nlm4_notify,
  nlm4_res,
  nlm4_shareargs,
  nlm4_shareres,
  nlm4_testargs,
  nlm4_testres,
  nlm4_unlockargs,
  nlm_cancargs,
  nlm_lockargs,
  nlm_notify,
  nlm_res,
  nlm_shareargs,
  nlm_shareres,
  nlm_testargs,
  nlm_testres,
  nlm_unlockargs,
} from '../../xdr/generated/nlm.ts'
import { NLM_PROG, nlm4_res as nlm4ResCodec, nlm4_testres as nlm4TestresCodec, nlm_res as nlmResCodec, nlm_testres as nlmTestresCodec } from '../../xdr/generated/nlm.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { combineVersions, defineVersion } from '../rpc/program.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import { holder32, holder4, lockOf32, lockOf4, stat32 } from './convert.ts'
import type { Grants } from './granted.ts'
import type { NlmService } from './service.ts'
import { NLM } from './types.ts'
import type { NlmStat, PeerCaller } from './types.ts'

/** The _RES procedure numbers (the same in every version). */
const RES = { TEST: 11, LOCK: 12, CANCEL: 13, UNLOCK: 14, GRANTED: 15 } as const

/**
 * _RES messages on their way at once. A _MSG's handler returns before its answer is
 * sent, so the RPC layer's in-flight bound does not cover these: past this many, an
 * answer is dropped and logged (the client re-sends its _MSG, as on a lost datagram).
 */
const MAX_RES_IN_FLIGHT = 256

export interface NlmProgramDeps {
  service: NlmService
  grants: Grants
  caller: PeerCaller
}

export function createNlmProgram(deps: NlmProgramDeps): RpcProgram {
  const { service, grants } = deps
  let resInFlight = 0

  /**
   * A _MSG handler: do the work, send the answer as a _RES call to the caller's
   * lock manager (a lost one is the client's to retry, as with UDP), reply empty.
   */
  function answerWith<A, R>(proc: number, codec: Codec<R>, work: (a: A, call: CallContext) => R | Promise<R>) {
    return async (a: A, call: CallContext): Promise<undefined> => {
      const res = await work(a, call)
      if (resInFlight >= MAX_RES_IN_FLIGHT) {
        call.log.warn({ peer: call.peer.address, proc }, 'nlm: too many _RES messages in flight; dropping one')
        return undefined
      }
      resInFlight++
      deps.caller.send({ address: call.peer.address, transport: call.transport, vers: call.vers }, proc, codec, res).catch((err: unknown) => {
        call.log.debug({ err, peer: call.peer.address, proc }, 'nlm: could not deliver a _RES message')
      }).finally(() => {
        resInFlight--
      })
      return undefined
    }
  }
  function grantedRes(a: nlm4_res | nlm_res): undefined {
    grants.answered(a.cookie, a.stat.stat)
    return undefined
  }
  function freeAll(a: nlm4_notify | nlm_notify): undefined {
    service.freeAll(a.name)
    return undefined
  }

  // ---- version 4 ----
  const res4 = (cookie: Buffer, stat: NlmStat): nlm4_res => ({ cookie, stat: { stat } })

  async function test4(a: nlm4_testargs, call: CallContext): Promise<nlm4_testres> {
    const lock = lockOf4(a.alock)
    if (lock === null) return { cookie: a.cookie, test_stat: { stat: NLM.FBIG } }
    const r = await service.test(call, lock, a.exclusive)
    return { cookie: a.cookie, test_stat: r.stat === NLM.DENIED ? { stat: 1, holder: holder4(r.holder) } : { stat: r.stat } }
  }
  async function lock4(a: nlm4_lockargs, call: CallContext, monitored = true, viaMsg = false): Promise<nlm4_res> {
    const lock = lockOf4(a.alock)
    if (lock === null) return res4(a.cookie, NLM.FBIG)
    const block = monitored && a.block
    return res4(a.cookie, await service.lock(call, { lock, exclusive: a.exclusive, block, reclaim: a.reclaim, monitored, viaMsg }))
  }
  async function cancel4(a: nlm4_cancargs, call: CallContext): Promise<nlm4_res> {
    const lock = lockOf4(a.alock)
    return res4(a.cookie, lock === null ? NLM.FBIG : await service.cancel(call, lock, a.exclusive))
  }
  async function unlock4(a: nlm4_unlockargs, call: CallContext): Promise<nlm4_res> {
    const lock = lockOf4(a.alock)
    return res4(a.cookie, lock === null ? NLM.FBIG : await service.unlock(call, lock))
  }
  async function share4(a: nlm4_shareargs, call: CallContext, on: boolean): Promise<nlm4_shareres> {
    const s = a.share
    const args = { callerName: s.caller_name, fh: s.fh, oh: s.oh, access: s.access, deny: s.mode, reclaim: a.reclaim }
    return { cookie: a.cookie, stat: on ? await service.share(call, args) : await service.unshare(call, args), sequence: 0 }
  }

  const v4 = defineVersion(NLM_PROG, 'NLM4_VERS', {
    NLMPROC4_NULL: () => undefined,
    NLMPROC4_TEST: test4,
    NLMPROC4_LOCK: (a, call) => lock4(a, call),
    NLMPROC4_CANCEL: cancel4,
    NLMPROC4_UNLOCK: unlock4,
    // We are a server: no request of ours waits for a grant, so one offered is refused.
    NLMPROC4_GRANTED: (a) => res4(a.cookie, NLM.DENIED),
    NLMPROC4_TEST_MSG: answerWith(RES.TEST, nlm4TestresCodec, test4),
    NLMPROC4_LOCK_MSG: answerWith(RES.LOCK, nlm4ResCodec, (a: nlm4_lockargs, call) => lock4(a, call, true, true)),
    NLMPROC4_CANCEL_MSG: answerWith(RES.CANCEL, nlm4ResCodec, cancel4),
    NLMPROC4_UNLOCK_MSG: answerWith(RES.UNLOCK, nlm4ResCodec, unlock4),
    NLMPROC4_GRANTED_MSG: answerWith(RES.GRANTED, nlm4ResCodec, (a: nlm4_testargs) => res4(a.cookie, NLM.DENIED)),
    // Answers to requests we never make as a client: nothing to do.
    NLMPROC4_TEST_RES: () => undefined,
    NLMPROC4_LOCK_RES: () => undefined,
    NLMPROC4_CANCEL_RES: () => undefined,
    NLMPROC4_UNLOCK_RES: () => undefined,
    NLMPROC4_GRANTED_RES: grantedRes,
    NLMPROC4_SHARE: (a, call) => share4(a, call, true),
    NLMPROC4_UNSHARE: (a, call) => share4(a, call, false),
    NLMPROC4_NM_LOCK: (a, call) => lock4(a, call, false),
    NLMPROC4_FREE_ALL: freeAll,
  })

  // ---- versions 1 and 3 ----
  const res32 = (cookie: Buffer, stat: NlmStat): nlm_res => ({ cookie, stat: { stat: stat32(stat) } })

  async function test32(a: nlm_testargs, call: CallContext): Promise<nlm_testres> {
    const r = await service.test(call, lockOf32(a.alock), a.exclusive)
    if (r.stat === NLM.DENIED) return { cookie: a.cookie, test_stat: { stat: 1, holder: holder32(r.holder) } }
    return { cookie: a.cookie, test_stat: { stat: stat32(r.stat) as Exclude<ReturnType<typeof stat32>, 1> } }
  }
  async function lock32(a: nlm_lockargs, call: CallContext, monitored = true, viaMsg = false): Promise<nlm_res> {
    const lock = lockOf32(a.alock)
    const block = monitored && a.block
    return res32(a.cookie, await service.lock(call, { lock, exclusive: a.exclusive, block, reclaim: a.reclaim, monitored, viaMsg }))
  }
  const cancel32 = async (a: nlm_cancargs, call: CallContext): Promise<nlm_res> => res32(a.cookie, await service.cancel(call, lockOf32(a.alock), a.exclusive))
  const unlock32 = async (a: nlm_unlockargs, call: CallContext): Promise<nlm_res> => res32(a.cookie, await service.unlock(call, lockOf32(a.alock)))
  async function share32(a: nlm_shareargs, call: CallContext, on: boolean): Promise<nlm_shareres> {
    const s = a.share
    const args = { callerName: s.caller_name, fh: s.fh, oh: s.oh, access: s.access, deny: s.mode, reclaim: a.reclaim }
    return { cookie: a.cookie, stat: stat32(on ? await service.share(call, args) : await service.unshare(call, args)), sequence: 0 }
  }

  const common32 = {
    test: test32,
    lock: (a: nlm_lockargs, call: CallContext) => lock32(a, call),
    cancel: cancel32,
    unlock: unlock32,
    granted: (a: nlm_testargs) => res32(a.cookie, NLM.DENIED),
    testMsg: answerWith(RES.TEST, nlmTestresCodec, test32),
    lockMsg: answerWith(RES.LOCK, nlmResCodec, (a: nlm_lockargs, call) => lock32(a, call, true, true)),
    cancelMsg: answerWith(RES.CANCEL, nlmResCodec, cancel32),
    unlockMsg: answerWith(RES.UNLOCK, nlmResCodec, unlock32),
    grantedMsg: answerWith(RES.GRANTED, nlmResCodec, (a: nlm_testargs) => res32(a.cookie, NLM.DENIED)),
    grantedRes,
  }

  const v1 = defineVersion(NLM_PROG, 'NLM_VERS', {
    NLMPROC_NULL: () => undefined,
    NLMPROC_TEST: common32.test,
    NLMPROC_LOCK: common32.lock,
    NLMPROC_CANCEL: common32.cancel,
    NLMPROC_UNLOCK: common32.unlock,
    NLMPROC_GRANTED: common32.granted,
    NLMPROC_TEST_MSG: common32.testMsg,
    NLMPROC_LOCK_MSG: common32.lockMsg,
    NLMPROC_CANCEL_MSG: common32.cancelMsg,
    NLMPROC_UNLOCK_MSG: common32.unlockMsg,
    NLMPROC_GRANTED_MSG: common32.grantedMsg,
    NLMPROC_TEST_RES: () => undefined,
    NLMPROC_LOCK_RES: () => undefined,
    NLMPROC_CANCEL_RES: () => undefined,
    NLMPROC_UNLOCK_RES: () => undefined,
    NLMPROC_GRANTED_RES: common32.grantedRes,
  })

  const v3 = defineVersion(NLM_PROG, 'NLM_VERSX', {
    NLMPROC3_NULL: () => undefined,
    NLMPROC3_TEST: common32.test,
    NLMPROC3_LOCK: common32.lock,
    NLMPROC3_CANCEL: common32.cancel,
    NLMPROC3_UNLOCK: common32.unlock,
    NLMPROC3_GRANTED: common32.granted,
    NLMPROC3_TEST_MSG: common32.testMsg,
    NLMPROC3_LOCK_MSG: common32.lockMsg,
    NLMPROC3_CANCEL_MSG: common32.cancelMsg,
    NLMPROC3_UNLOCK_MSG: common32.unlockMsg,
    NLMPROC3_GRANTED_MSG: common32.grantedMsg,
    NLMPROC3_TEST_RES: () => undefined,
    NLMPROC3_LOCK_RES: () => undefined,
    NLMPROC3_CANCEL_RES: () => undefined,
    NLMPROC3_UNLOCK_RES: () => undefined,
    NLMPROC3_GRANTED_RES: common32.grantedRes,
    NLMPROC3_SHARE: (a, call) => share32(a, call, true),
    NLMPROC3_UNSHARE: (a, call) => share32(a, call, false),
    NLMPROC3_NM_LOCK: (a, call) => lock32(a, call, false),
    NLMPROC3_FREE_ALL: freeAll,
  })

  return combineVersions(v1, v3, v4)
}
