/*
 * tsnfs replication status|takeover HOST:PORT: ask a node's replication
 * program (xdr/spec/replication.x) for its view, or tell a standby to take
 * over. Exit 0 on success, 1 when the node refuses or cannot be reached,
 * 2 on a usage error.
 */
import { parseArgs } from 'node:util'
import { PeerCallError } from '../server/callback/errors.ts'
import { StreamCaller } from '../server/callback/stream.ts'
import { failuresFromWire, statusFromWire, statusToJson } from '../server/replication/status.ts'
import type { ExportFailure, NodeStatus } from '../server/replication/status.ts'
import { TSNFS_REPL_PROG, repl_failures_res, repl_stat, repl_statNames, repl_status_res, repl_takeover_args, repl_takeover_res } from '../xdr/generated/replication.ts'
import { xdr_void } from '../xdr/runtime/codec.ts'
import { wantsHelp } from './help.ts'

export const REPLICATION_USAGE = `usage: tsnfs replication status HOST:PORT [--json]
       tsnfs replication takeover HOST:PORT [--force] [--json]
  status    a node's role, epoch, each export's position, and each peer: alive, last
            heartbeat, acknowledged position, lag in changes and bytes, state
  takeover  tell a standby to become the primary (a new epoch); refused while the
            primary still answers it, unless --force
  HOST:PORT is the node's replication address ([v6]:PORT for IPv6)
`

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const proc = (n: number): { prog: number; vers: number; proc: number } => ({ prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: n })

/** Why a node refused, in words. */
const REFUSALS: Readonly<Partial<Record<number, string>>> = {
  [repl_stat.REPL_BUSY]: 'the primary still answers this standby, or a takeover is under way (--force takes over anyway)',
  [repl_stat.REPL_NOT_STANDBY]: 'the node is not a standby (fenced: it must rejoin as a standby first)',
  [repl_stat.REPL_IO]: 'the node became primary but its takeover hook failed (see its log)',
}

function parseAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text)
  const port = Number(m?.[3])
  const host = m?.[1] ?? m?.[2]
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`not a HOST:PORT: "${text}"`)
  return { host, port }
}

class UsageError extends Error {}

export async function replication(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(REPLICATION_USAGE)
    return 0
  }
  let sub: string | undefined
  let at: { host: string; port: number }
  let json: boolean
  let force: boolean
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false }, force: { type: 'boolean', default: false } },
      allowPositionals: true,
    })
    ;[sub] = positionals
    if (positionals.length !== 2 || (sub !== 'status' && sub !== 'takeover')) throw new UsageError('expected status or takeover, and HOST:PORT')
    if (sub === 'status' && values.force) throw new UsageError('--force is for takeover')
    at = parseAddress(positionals[1] ?? '')
    json = values.json
    force = values.force
  } catch (err) {
    process.stderr.write(`tsnfs replication: ${(err as Error).message}\n${REPLICATION_USAGE}`)
    return 2
  }
  let c: StreamCaller
  try {
    c = await StreamCaller.open(at, { timeoutMs: 5000 })
  } catch (err) {
    process.stderr.write(`tsnfs replication: ${(err as Error).message}\n`)
    return 1
  }
  try {
    return sub === 'status' ? await status(c, json) : await takeover(c, force, json)
  } catch (err) {
    process.stderr.write(`tsnfs replication: ${(err as Error).message}\n`)
    return 1
  } finally {
    c.close()
  }
}

async function status(c: StreamCaller, json: boolean): Promise<number> {
  const res = await c.call(proc(V1.procs.REPL_STATUS.proc), xdr_void, undefined, repl_status_res)
  if (res.status !== repl_stat.REPL_OK) {
    process.stderr.write(`tsnfs replication: status refused: ${repl_statNames[res.status] ?? String(res.status)}\n`)
    return 1
  }
  const failures = await failuresOf(c)
  const s = { ...statusFromWire(res.ok), ...(failures.length === 0 ? {} : { failures }) }
  process.stdout.write(json ? JSON.stringify(statusToJson(s), null, 2) + '\n' : formatStatus(s))
  return 0
}

/** The node's own failed exports: none from a node of an older build, which has no REPL_FAILURES (PROC_UNAVAIL). */
async function failuresOf(c: StreamCaller): Promise<ExportFailure[]> {
  try {
    const res = await c.call(proc(V1.procs.REPL_FAILURES.proc), xdr_void, undefined, repl_failures_res)
    return res.status === repl_stat.REPL_OK ? failuresFromWire(res.ok) : []
  } catch (err) {
    if (err instanceof PeerCallError && err.status === 'PROC_UNAVAIL') return []
    throw err
  }
}

async function takeover(c: StreamCaller, force: boolean, json: boolean): Promise<number> {
  // A takeover waits for the standby's running APPENDs and a durable write: allow more than a status call.
  const res = await c.call(proc(V1.procs.REPL_TAKEOVER.proc), repl_takeover_args, { force }, repl_takeover_res, { timeoutMs: 30_000 })
  if (res.status === repl_stat.REPL_OK) {
    process.stdout.write(json ? JSON.stringify({ ok: true, epoch: res.epoch.toString() }) + '\n' : `took over: primary at epoch ${res.epoch.toString()}\n`)
    return 0
  }
  const name = repl_statNames[res.status] ?? String(res.status)
  if (json) process.stdout.write(JSON.stringify({ ok: false, status: name }) + '\n')
  process.stderr.write(`tsnfs replication: takeover refused: ${name}${REFUSALS[res.status] === undefined ? '' : ` (${REFUSALS[res.status] ?? ''})`}\n`)
  return 1
}

function table(rows: string[][]): string[] {
  const widths: number[] = []
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '))
}

function age(ms: number | null): string {
  if (ms === null) return 'never'
  return ms < 1000 ? `${String(Math.round(ms))} ms ago` : `${(ms / 1000).toFixed(1)} s ago`
}

/** The status for people: the node, its exports, then one row per peer. */
export function formatStatus(s: NodeStatus): string {
  const out = [`node    ${s.node}`, `role    ${s.role}`, `epoch   ${s.epoch.toString()}`]
  if (s.positions.length === 0) out.push('exports none')
  for (const [i, p] of s.positions.entries()) {
    const f = s.failures?.find((x) => x.exportId === p.exportId)
    const failed = f === undefined ? '' : `, ${f.state} (${f.code} at ${f.path}) since ${new Date(f.sinceMs).toISOString()}`
    out.push(`${i === 0 ? 'exports' : '       '} ${String(p.exportId)}: at ${p.applied.toString()}${p.needResync ? ', needs a full resync' : ''}${failed}`)
  }
  if (s.peers.length === 0) out.push('peers   none')
  else {
    out.push('peers:')
    const rows = [['node', 'address', 'role', 'alive', 'heard', 'acked', 'lag ops', 'lag bytes', 'state']]
    for (const p of s.peers) {
      rows.push([p.node, p.address, p.role, p.alive ? 'yes' : 'no', age(p.lastHeartbeatAgeMs), p.acked.toString(), p.lagOps.toString(), p.lagBytes.toString(), p.state])
    }
    out.push(...table(rows).map((l) => `  ${l}`))
  }
  return out.join('\n') + '\n'
}
