/*
 * The Prometheus text exposition format, version 0.0.4: `# HELP` and
 * `# TYPE` before each family, one sample per line, label values escaped
 * (backslash, double quote, newline). Built from RpcStats (what the RPC
 * layer counts) and CallMetrics (what the handler wrapper measures).
 */
import { readdirSync } from 'node:fs'
import type { MemoryHolder, ReclaimStats } from '../memory.ts'
import type { HeapBudgetStats } from '../../common/heap-budget.ts'
import { heapGrowth } from '../../common/heap-growth.ts'
import type { RpcStats } from '../rpc/stats.ts'
import type { CallMetrics, ProcMetrics } from './instrument.ts'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** One RPC listener's counters: the main port, and the extra portmapper port when there is one. */
export interface StatsSource {
  listener: string
  stats: RpcStats
}

export type Labels = Readonly<Record<string, string | number>>

export class Exposition {
  private readonly lines: string[] = []

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`)
  }

  sample(name: string, labels: Labels, value: number): void {
    const keys = Object.keys(labels)
    const l = keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(String(labels[k]))}"`).join(',')}}`
    this.lines.push(`${name}${l} ${formatValue(value)}`)
  }

  text(): string {
    return this.lines.join('\n') + '\n'
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

const REPLY_KINDS = ['success', 'progUnavail', 'progMismatch', 'procUnavail', 'garbageArgs', 'systemErr', 'rpcMismatch', 'authError'] as const

/** Per-listener plain counters: [metric, RpcStats field, help]. */
const COUNTERS = [
  ['tsnfs_rpc_dropped_total', 'dropped', 'Records dropped without a reply (not a CALL, truncated header, duplicate in progress).'],
  ['tsnfs_rpc_received_bytes_total', 'bytesIn', 'Bytes received on TCP connections and UDP datagrams.'],
  ['tsnfs_rpc_sent_bytes_total', 'bytesOut', 'Bytes of replies sent.'],
  ['tsnfs_connections_accepted_total', 'connectionsAccepted', 'TCP connections accepted.'],
  ['tsnfs_rpc_framing_errors_total', 'framingErrors', 'TCP connections closed for a framing error.'],
  ['tsnfs_udp_datagrams_dropped_total', 'udpDatagramsDropped', 'UDP datagrams dropped unanswered (too large).'],
  ['tsnfs_drc_hits_total', 'drcHits', 'Retransmitted non-idempotent calls answered from the duplicate request cache.'],
  ['tsnfs_drc_in_progress_drops_total', 'drcInProgressDrops', 'Retransmissions dropped while the original call was still running.'],
  ['tsnfs_connections_refused_total', 'connectionsRefused', 'TCP connections refused by the total or per-client connection cap.'],
  ['tsnfs_connections_idle_closed_total', 'connectionsIdleClosed', 'TCP connections closed after the idle timeout.'],
  ['tsnfs_record_timeouts_total', 'recordTimeouts', 'TCP connections closed because a record was not complete in time (trickling peers).'],
  ['tsnfs_udp_overload_drops_total', 'udpOverloadDrops', 'UDP calls dropped because the server-wide in-flight cap was reached (clients retransmit).'],
] as const

/** Counters of the caches that count their lookups (the engine's block caches, the cluster caches). */
const CACHE_COUNTERS = [
  ['tsnfs_memory_cache_hits_total', 'hits', 'Lookups a cache answered.'],
  ['tsnfs_memory_cache_misses_total', 'misses', 'Lookups a cache could not answer (read from the device, the database or the object store).'],
  ['tsnfs_memory_cache_evictions_total', 'evictions', 'Entries dropped to stay within the cache\'s bound (not those an idle trim let go).'],
] as const

/** The server's pools and caches and what the idle reclaim did (server/memory.ts). */
export interface MemorySource {
  holders: readonly MemoryHolder[]
  stats: ReclaimStats
  /** The heap budget's forced collections (optional: sources without one show none). */
  budgetStats?(): HeapBudgetStats
}

/** Families rendered by another part of the server (the served volumes, server/metrics/volumes.ts). */
export type MetricsFamilies = (x: Exposition) => void

export function renderPrometheus(calls: CallMetrics, sources: readonly StatsSource[], memory?: MemorySource, extra: readonly MetricsFamilies[] = []): string {
  const x = new Exposition()
  const procLabels = (key: string): Labels => {
    const m = calls.procs.get(key)
    if (m !== undefined) return { program: m.program, version: m.version, procedure: m.procedure }
    const [prog = '', vers = '', proc = ''] = key.split('/')
    return { program: prog, version: vers, procedure: proc }
  }

  x.family('tsnfs_rpc_calls_total', 'counter', 'RPC calls that reached a registered procedure (including those with undecodable arguments).')
  const totals = new Map<string, number>()
  for (const s of sources) for (const [k, n] of Object.entries(s.stats.calls)) totals.set(k, (totals.get(k) ?? 0) + n)
  for (const [k, n] of [...totals].sort(([a], [b]) => a.localeCompare(b))) x.sample('tsnfs_rpc_calls_total', procLabels(k), n)

  x.family('tsnfs_rpc_replies_total', 'counter', 'RPC replies sent, by reply status (RFC 5531 accept_stat and reject reasons).')
  for (const s of sources) for (const kind of REPLY_KINDS) x.sample('tsnfs_rpc_replies_total', { listener: s.listener, status: kind }, s.stats.replies[kind])

  const procs = [...calls.procs.values()].filter((m) => m.latency.count > 0)
  x.family('tsnfs_rpc_handler_duration_seconds', 'histogram', 'Time from decoded arguments to the procedure handler result.')
  for (const m of procs) histogram(x, m)

  x.family('tsnfs_rpc_handler_errors_total', 'counter', 'Procedure handlers that threw (answered SYSTEM_ERR or an authentication error).')
  for (const m of procs) if (m.thrown > 0) x.sample('tsnfs_rpc_handler_errors_total', labelsOf(m), m.thrown)

  x.family('tsnfs_rpc_result_failures_total', 'counter', 'Results carrying a non-zero status (nfsstat3, mountstat3), by status value.')
  for (const m of procs) for (const [status, n] of m.failures) x.sample('tsnfs_rpc_result_failures_total', { ...labelsOf(m), status }, n)

  for (const [name, field, help] of COUNTERS) {
    x.family(name, 'counter', help)
    for (const s of sources) x.sample(name, { listener: s.listener }, s.stats[field])
  }
  x.family('tsnfs_connections_open', 'gauge', 'TCP connections open now.')
  for (const s of sources) x.sample('tsnfs_connections_open', { listener: s.listener }, s.stats.connectionsOpen)

  processMemory(x)
  if (memory !== undefined) memoryHolders(x, memory)
  for (const render of extra) render(x)
  const fds = openFds()
  if (fds !== null) {
    x.family('process_open_fds', 'gauge', 'Open file descriptors.')
    x.sample('process_open_fds', {}, fds)
  }
  return x.text()
}

/** process.memoryUsage(): where resident memory goes (V8 heap, Buffers and other memory outside it). */
function processMemory(x: Exposition): void {
  const mem = process.memoryUsage()
  const gauges = [
    ['process_resident_memory_bytes', 'Resident set size in bytes.', mem.rss],
    ['nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', mem.heapTotal],
    ['nodejs_heap_used_bytes', 'V8 heap in use, in bytes.', mem.heapUsed],
    ['nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects (Buffers included), in bytes.', mem.external],
    ['nodejs_array_buffers_bytes', 'Memory of ArrayBuffers and Buffers (part of external), in bytes.', mem.arrayBuffers],
  ] as const
  for (const [name, help, v] of gauges) {
    x.family(name, 'gauge', help)
    x.sample(name, {}, v)
  }
  // Per V8 space: whether reserved heap beyond the live one is the young generation (semi-spaces grown
  // under a high allocation rate) or old-space pages kept after collection (bench/engine-rss.ts).
  // Loaded here, not at the top: node:v8 costs every command's start-up, and only a scrape needs it.
  const spaces = process.getBuiltinModule('node:v8').getHeapSpaceStatistics()
  x.family('nodejs_heap_space_size_bytes', 'gauge', 'V8 heap reserved per space, in bytes.')
  for (const s of spaces) x.sample('nodejs_heap_space_size_bytes', { space: s.space_name }, s.space_size)
  x.family('nodejs_heap_space_used_bytes', 'gauge', 'V8 heap in use per space, in bytes.')
  for (const s of spaces) x.sample('nodejs_heap_space_used_bytes', { space: s.space_name }, s.space_used_size)
}

function memoryHolders(x: Exposition, m: MemorySource): void {
  x.family('tsnfs_memory_pool_bytes', 'gauge', 'Free buffers held by a pool for reuse, in bytes (trimmed when the server is idle).')
  for (const h of m.holders) if (h.kind === 'pool') x.sample('tsnfs_memory_pool_bytes', { pool: h.name }, h.bytes())
  x.family('tsnfs_memory_cache_bytes', 'gauge', 'Bytes held by a cache (an estimate: the duplicate request cache, the engine caches and the cluster metadata caches count a fixed cost per entry).')
  for (const h of m.holders) if (h.kind === 'cache') x.sample('tsnfs_memory_cache_bytes', { cache: h.name }, h.bytes())
  x.family('tsnfs_memory_cache_limit_bytes', 'gauge', 'The byte bound a cache keeps to (caches with one).')
  for (const h of m.holders) if (h.kind === 'cache' && h.limit !== undefined) x.sample('tsnfs_memory_cache_limit_bytes', { cache: h.name }, h.limit())
  const counted = m.holders.flatMap((h) => (h.kind === 'cache' && h.counts !== undefined ? [{ name: h.name, c: h.counts() }] : []))
  for (const [name, field, help] of CACHE_COUNTERS) {
    x.family(name, 'counter', help)
    for (const h of counted) x.sample(name, { cache: h.name }, h.c[field])
  }
  x.family('tsnfs_memory_reclaims_total', 'counter', 'Idle periods after which pools were trimmed and garbage collected.')
  x.sample('tsnfs_memory_reclaims_total', {}, m.stats.reclaims)
  x.family('tsnfs_memory_trimmed_bytes_total', 'counter', 'Bytes pools and caches let go when the server was idle.')
  x.sample('tsnfs_memory_trimmed_bytes_total', {}, m.stats.trimmedBytes)
  x.family('tsnfs_memory_heap_growth_percent', 'gauge', 'V8\'s old generation grows at most this far past what the last full collection left live (--heap-growth; 0: V8\'s own factor).')
  x.sample('tsnfs_memory_heap_growth_percent', {}, heapGrowth())
  const b = m.budgetStats?.()
  if (b !== undefined) {
    x.family('tsnfs_memory_budget_collections_total', 'counter', 'Full collections run while busy because V8\'s reserved heap exceeded --heap-budget.')
    x.sample('tsnfs_memory_budget_collections_total', {}, b.collections)
    x.family('tsnfs_memory_budget_pause_seconds_total', 'counter', 'Time spent in those collections, in seconds.')
    x.sample('tsnfs_memory_budget_pause_seconds_total', {}, b.pauseMs / 1000)
    x.family('tsnfs_memory_budget_pause_max_seconds', 'gauge', 'The longest of those collections, in seconds.')
    x.sample('tsnfs_memory_budget_pause_max_seconds', {}, b.maxPauseMs / 1000)
  }
}

function labelsOf(m: ProcMetrics): Labels {
  return { program: m.program, version: m.version, procedure: m.procedure }
}

function histogram(x: Exposition, m: ProcMetrics): void {
  const name = 'tsnfs_rpc_handler_duration_seconds'
  const labels = labelsOf(m)
  const cum = m.latency.cumulative()
  m.latency.bounds.forEach((le, i) => {
    x.sample(`${name}_bucket`, { ...labels, le }, cum[i] ?? 0)
  })
  x.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, m.latency.count)
  x.sample(`${name}_sum`, labels, m.latency.sum)
  x.sample(`${name}_count`, labels, m.latency.count)
}

/** Linux only; elsewhere the gauge is left out. */
function openFds(): number | null {
  try {
    return readdirSync('/proc/self/fd').length
  } catch {
    return null
  }
}
