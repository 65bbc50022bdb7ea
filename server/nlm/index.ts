/*
 * The lock manager assembled: the table (locks/), handle lookup, grace
 * period, GRANTED callbacks and the NLM program, for server/index.ts.
 */
import { LockTable } from '../../locks/table.ts'
import type { LockLimits } from '../../locks/types.ts'
import type { Logger } from '../logger.ts'
import type { Nfs3Host } from '../nfs3/host.ts'
import type { RpcProgram } from '../rpc/program.ts'
import { LockFiles } from './files.ts'
import { GracePeriod } from './grace.ts'
import { Grants } from './granted.ts'
import { createNlmProgram } from './program.ts'
import { NlmService } from './service.ts'
import type { PeerCaller, PeerMonitor } from './types.ts'

export interface NlmOptions {
  /** The grace period after a start in which only reclaims are granted (XNFS ch. 10); default 90 s. */
  graceMs: number
  /** A client that reclaimed counts as done once its reclaims stop for this long. */
  graceQuietMs: number
  limits: Partial<LockLimits>
  unmonitorAfterMs: number
  grantRetryMs: number
  grantMaxRetryMs: number
}

export const DEFAULT_NLM_OPTIONS: NlmOptions = {
  graceMs: 90_000,
  graceQuietMs: 2_000,
  limits: {},
  unmonitorAfterMs: 30_000,
  grantRetryMs: 1_000,
  grantMaxRetryMs: 30_000,
}

export interface LockManager {
  readonly program: RpcProgram
  readonly table: LockTable
  readonly grace: GracePeriod
  readonly service: NlmService
  close(): void
}

export function createLockManager(deps: {
  host: Nfs3Host
  monitor: PeerMonitor
  caller: PeerCaller
  /** The clients that held locks when the server last stopped: the grace period waits for them. */
  expected: readonly string[]
  log: Logger
  options?: Partial<NlmOptions>
}): LockManager {
  const o = { ...DEFAULT_NLM_OPTIONS, ...deps.options }
  const log = deps.log.child({ component: 'nlm' })
  const table = new LockTable(o.limits)
  const grace = new GracePeriod({
    durationMs: o.graceMs,
    quietMs: o.graceQuietMs,
    expected: deps.expected,
    onEnd: (reason) => {
      log.info({ reason }, reason === 'reclaimed' ? 'grace period over: every client reclaimed' : 'grace period over')
    },
  })
  if (grace.active) log.info({ ms: o.graceMs, clients: deps.expected.length }, 'grace period: only lock reclaims are granted')
  const grants = new Grants(deps.caller, log, { retryMs: o.grantRetryMs, maxRetryMs: o.grantMaxRetryMs })
  const service = new NlmService({ files: new LockFiles(deps.host), table, grace, grants, monitor: deps.monitor, log }, { unmonitorAfterMs: o.unmonitorAfterMs })
  const program = createNlmProgram({ service, grants, caller: deps.caller })
  return {
    program,
    table,
    grace,
    service,
    close() {
      grace.end()
      grants.close()
      service.close()
    },
  }
}
