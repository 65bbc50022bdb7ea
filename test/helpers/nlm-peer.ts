/*
 * A client host for server NLM tests: its portmapper, its NSM (nsm-peer.ts)
 * and its own lock manager, which records the GRANTED callbacks and _RES
 * messages the server sends it and answers GRANTED as `grantedReply` says.
 */
import type { Test } from 'tap'
import { combineVersions, defineVersion } from '../../server/rpc/program.ts'
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import type { nlm4_res, nlm4_stats, nlm4_testargs, nlm4_testres } from '../../xdr/generated/nlm.ts'
import { startFakeNsmPeer } from './nsm-peer.ts'
import type { FakeNsmPeer } from './nsm-peer.ts'

export type NlmEvent =
  | { kind: 'GRANTED' | 'GRANTED_MSG'; args: nlm4_testargs }
  | { kind: 'TEST_RES'; res: nlm4_testres }
  | { kind: 'LOCK_RES' | 'CANCEL_RES' | 'UNLOCK_RES' | 'GRANTED_RES'; res: nlm4_res }

export interface FakeNlmHost extends FakeNsmPeer {
  events: NlmEvent[]
  /** What GRANTED answers (default granted); null: no answer at all (the call times out). */
  grantedReply: nlm4_stats | null
  /** Resolves with the first event matching `kind` at or after index `from`. */
  next(kind: NlmEvent['kind'], from?: number, timeoutMs?: number): Promise<NlmEvent>
}

export async function startFakeNlmHost(t: Test, address: string, port = 0): Promise<FakeNlmHost> {
  const events: NlmEvent[] = []
  const waiters = new Set<() => void>()
  const record = (e: NlmEvent): void => {
    events.push(e)
    for (const w of waiters) w()
  }
  const host = { grantedReply: 0 as nlm4_stats | null }
  const none = (): undefined => undefined
  const v4 = defineVersion(NLM_PROG, 'NLM4_VERS', {
    NLMPROC4_NULL: none,
    NLMPROC4_TEST: (a) => ({ cookie: a.cookie, test_stat: { stat: 0 as const } }),
    NLMPROC4_LOCK: (a) => ({ cookie: a.cookie, stat: { stat: 0 as const } }),
    NLMPROC4_CANCEL: (a) => ({ cookie: a.cookie, stat: { stat: 0 as const } }),
    NLMPROC4_UNLOCK: (a) => ({ cookie: a.cookie, stat: { stat: 0 as const } }),
    NLMPROC4_GRANTED: async (a) => {
      record({ kind: 'GRANTED', args: a })
      if (host.grantedReply === null) await new Promise((r) => setTimeout(r, 60_000).unref())
      return { cookie: a.cookie, stat: { stat: host.grantedReply ?? 0 } }
    },
    NLMPROC4_TEST_MSG: none,
    NLMPROC4_LOCK_MSG: none,
    NLMPROC4_CANCEL_MSG: none,
    NLMPROC4_UNLOCK_MSG: none,
    NLMPROC4_GRANTED_MSG: (a) => {
      record({ kind: 'GRANTED_MSG', args: a })
      return undefined
    },
    NLMPROC4_TEST_RES: (res) => {
      record({ kind: 'TEST_RES', res })
      return undefined
    },
    NLMPROC4_LOCK_RES: (res) => {
      record({ kind: 'LOCK_RES', res })
      return undefined
    },
    NLMPROC4_CANCEL_RES: (res) => {
      record({ kind: 'CANCEL_RES', res })
      return undefined
    },
    NLMPROC4_UNLOCK_RES: (res) => {
      record({ kind: 'UNLOCK_RES', res })
      return undefined
    },
    NLMPROC4_GRANTED_RES: (res) => {
      record({ kind: 'GRANTED_RES', res })
      return undefined
    },
    NLMPROC4_SHARE: (a) => ({ cookie: a.cookie, stat: 0 as const, sequence: 0 }),
    NLMPROC4_UNSHARE: (a) => ({ cookie: a.cookie, stat: 0 as const, sequence: 0 }),
    NLMPROC4_NM_LOCK: (a) => ({ cookie: a.cookie, stat: { stat: 0 as const } }),
    NLMPROC4_FREE_ALL: none,
  })
  const peer = await startFakeNsmPeer(t, address, port, [combineVersions(v4)])
  // An accessor, not a copied value: tests change the answer while the host runs.
  Object.defineProperty(peer, 'grantedReply', {
    get: () => host.grantedReply,
    set: (v: nlm4_stats | null) => {
      host.grantedReply = v
    },
  })
  return Object.assign(peer as FakeNsmPeer & Pick<FakeNlmHost, 'grantedReply'>, {
    events,
    async next(kind: NlmEvent['kind'], from = 0, timeoutMs = 10_000): Promise<NlmEvent> {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const hit = events.slice(from).find((e) => e.kind === kind)
        if (hit !== undefined) return hit
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`no ${kind} at ${address} within ${String(timeoutMs)} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          const w = (): void => {
            clearTimeout(timer)
            waiters.delete(w)
            resolve()
          }
          waiters.add(w)
        })
      }
    },
  })
}
