/*
 * Per-procedure metrics and request-scoped debug logs without touching the
 * RPC layer: every RegisteredProc's handler is wrapped before the RpcServer
 * is built. The wrapper sees the time from decoded arguments to the handler's
 * result (decoding and encoding are not included), thrown errors, and the
 * status word of results that carry one (nfsstat3, mountstat3).
 */
import type { Logger } from '../logger.ts'
import type { CallContext, RegisteredProc, RegisteredVersion, RpcProgram } from '../rpc/program.ts'
import { Histogram } from './histogram.ts'

export interface ProcMetrics {
  readonly program: string
  readonly version: number
  readonly procedure: string
  readonly latency: Histogram
  /** Handler calls that threw (answered SYSTEM_ERR or an auth error by the dispatcher). */
  thrown: number
  /** Results whose `status`/`fhs_status` is not 0, by that value. */
  readonly failures: Map<number, number>
}

type HandlerFn = RegisteredProc['handler']

export class CallMetrics {
  /** By `${prog}/${vers}/${proc}`, the key RpcStats.calls uses. */
  readonly procs = new Map<string, ProcMetrics>()

  /** A copy of `program` whose handlers record metrics (and debug logs when enabled). */
  instrument(program: RpcProgram): RpcProgram {
    const versions = new Map<number, RegisteredVersion>()
    for (const [vers, v] of program.versions) {
      const procs = new Map<number, RegisteredProc>()
      for (const [num, p] of v.procs) {
        const m: ProcMetrics = { program: program.name, version: vers, procedure: p.name, latency: new Histogram(), thrown: 0, failures: new Map() }
        this.procs.set(`${program.prog}/${vers}/${num}`, m)
        procs.set(num, { ...p, handler: wrap(p.handler, m) })
      }
      versions.set(vers, { ...v, procs })
    }
    return { ...program, versions }
  }
}

function wrap(handler: HandlerFn, m: ProcMetrics): HandlerFn {
  return (args, call) => {
    const start = process.hrtime.bigint()
    // Request ids only when someone reads them: a child logger per call is not free.
    const ctx = call.log.isLevelEnabled?.('debug') === true ? withRequestLog(call, m) : call
    let out: unknown
    try {
      out = handler(args, ctx)
    } catch (err) {
      finish(m, start, ctx, undefined, err)
      throw err
    }
    if (isThenable(out)) {
      return out.then(
        (v) => {
          finish(m, start, ctx, v, undefined)
          return v
        },
        (err: unknown) => {
          finish(m, start, ctx, undefined, err)
          throw err
        },
      )
    }
    finish(m, start, ctx, out, undefined)
    return out
  }
}

function withRequestLog(call: CallContext, m: ProcMetrics): CallContext {
  const log: Logger = call.log.child({ xid: call.xid, peer: `${call.peer.address}:${String(call.peer.port)}`, proc: `${m.program}.${m.procedure}` })
  log.debug({ cred: call.cred.flavor === 'sys' ? { uid: call.cred.uid, gid: call.cred.gid } : 'none', transport: call.transport }, 'call')
  return { ...call, log }
}

function finish(m: ProcMetrics, start: bigint, ctx: CallContext, result: unknown, err: unknown): void {
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  m.latency.observe(seconds)
  const status = err === undefined ? statusOf(result) : undefined
  if (err !== undefined) m.thrown++
  else if (status !== undefined && status !== 0) m.failures.set(status, (m.failures.get(status) ?? 0) + 1)
  if (ctx.log.isLevelEnabled?.('debug') === true) {
    ctx.log.debug({ us: Math.round(seconds * 1e6), ...(status === undefined ? {} : { status }), ...(err === undefined ? {} : { err }) }, 'reply')
  }
}

/** nfsstat3 (`status`) or mountstat3 (`fhs_status`) of a result object, if it has one. */
function statusOf(result: unknown): number | undefined {
  if (typeof result !== 'object' || result === null) return undefined
  const r = result as { status?: unknown; fhs_status?: unknown }
  if (typeof r.status === 'number') return r.status
  if (typeof r.fhs_status === 'number') return r.fhs_status
  return undefined
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
}
