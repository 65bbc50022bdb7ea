/*
 * Telling peers we restarted: SM_NOTIFY(our name, our state) to each
 * peer's NSM, found through the portmapper at its address, as sm-notify(8)
 * does at boot. Peers are told in parallel (bounded); one that does not
 * answer is retried with a doubling delay until the give-up time.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { SM_PROG, stat_chge } from '../../xdr/generated/nsm.ts'
import { xdr_void } from '../../xdr/runtime/codec.ts'
import { callRegistered } from '../callback/portmap.ts'
import type { PortCache } from '../callback/portmap.ts'
import type { Logger } from '../logger.ts'

const SM = SM_PROG.versions.SM_VERS

export interface NotifyTarget {
  name: string
  address: string
}

export interface NotifyReport {
  notified: NotifyTarget[]
  /** Peers still silent at the give-up time (their entries stay: the next restart tries again). */
  gaveUp: (NotifyTarget & { error: string })[]
  /** Peers whose retries close() or a newer notifyAll() stopped. */
  stopped: NotifyTarget[]
}

export interface NotifyOptions {
  /** Our mon_name and state number. */
  name: string
  state: number
  peerPortmapPort: number
  /** Give up on a peer after this long (default 10 min). */
  giveUpMs: number
  /** First retry delay, doubled up to maxRetryMs. */
  firstRetryMs: number
  maxRetryMs: number
  /** Peers told at once. */
  concurrency: number
  /** Per SM_NOTIFY try (UDP, one retransmission). */
  callTimeoutMs: number
  cache: PortCache | null
  signal: AbortSignal
  log: Logger
  /** Called as each peer acknowledges. */
  onNotified(t: NotifyTarget): void
}

export async function notifyPeers(targets: readonly NotifyTarget[], o: NotifyOptions): Promise<NotifyReport> {
  const report: NotifyReport = { notified: [], gaveUp: [], stopped: [] }
  let next = 0
  const worker = async (): Promise<void> => {
    for (let t = targets[next++]; t !== undefined; t = targets[next++]) {
      const r = await notifyOne(t, o)
      if (r === null) report.stopped.push(t)
      else if (r === true) report.notified.push(t)
      else report.gaveUp.push({ ...t, error: r })
    }
  }
  await Promise.all(Array.from({ length: Math.min(o.concurrency, targets.length) }, worker))
  if (targets.length > 0) {
    o.log.info(
      { state: o.state, notified: report.notified.map(label), gaveUp: report.gaveUp.map(label), stopped: report.stopped.map(label) },
      'status monitor: restart notifications done',
    )
  }
  return report
}

/** A call, so that TypeScript does not keep its narrowing of `signal.aborted` across awaits. */
const aborted = (s: AbortSignal): boolean => s.aborted

const label = (t: NotifyTarget): string => `${t.name} (${t.address})`

/** true once acknowledged, null when stopped, else the last error at the give-up time. */
async function notifyOne(t: NotifyTarget, o: NotifyOptions): Promise<true | string | null> {
  const deadline = performance.now() + o.giveUpMs
  let delay = o.firstRetryMs
  for (let attempt = 1; ; attempt++) {
    try {
      await callRegistered(
        { host: t.address, pmapPort: o.peerPortmapPort, transport: 'udp', prog: SM_PROG.prog, vers: SM.vers, proc: SM.procs.SM_NOTIFY.proc },
        stat_chge,
        { mon_name: o.name, state: o.state },
        xdr_void,
        { timeoutMs: o.callTimeoutMs, retries: 1, signal: o.signal, cache: o.cache },
      )
      o.log.info({ peer: t.name, address: t.address, state: o.state, attempt }, 'status monitor: peer notified of our restart')
      o.onNotified(t)
      return true
    } catch (err) {
      if (aborted(o.signal)) return null
      const error = (err as Error).message
      if (performance.now() + delay > deadline) {
        o.log.warn({ peer: t.name, address: t.address, attempt, err }, 'status monitor: gave up notifying a peer of our restart')
        return error
      }
      o.log.debug({ peer: t.name, address: t.address, attempt, retryInMs: delay, error }, 'status monitor: peer not notified yet')
    }
    try {
      await sleep(delay, undefined, { signal: o.signal })
    } catch {
      return null
    }
    delay = Math.min(delay * 2, o.maxRetryMs)
  }
}
