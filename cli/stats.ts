/*
 * tsnfs stats: fetch a running server's Prometheus endpoint and print it for
 * people: one row per procedure that was called (calls, failures, mean and
 * bucket-estimated p50/p99 latency), then the transport counters.
 */
import { get } from 'node:http'
import { parseArgs } from 'node:util'
import { parseMetricsAddress } from '../server/metrics/endpoint.ts'

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9049'

export const STATS_USAGE = `usage: tsnfs stats [--metrics HOST:PORT]
  print the counters of a server started with --metrics (default ${DEFAULT_METRICS_ADDRESS})
`

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export async function stats(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { metrics: { type: 'string', default: DEFAULT_METRICS_ADDRESS }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: false,
  })
  if (values.help === true) {
    process.stdout.write(STATS_USAGE)
    return 0
  }
  const at = parseMetricsAddress(values.metrics)
  const text = await fetchText(at.host, at.port)
  process.stdout.write(formatStats(parseExposition(text)))
  return 0
}

function fetchText(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host, port, path: '/metrics', timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body)
        else reject(new Error(`http://${host}:${String(port)}/metrics answered ${String(res.statusCode)}`))
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', (err) => {
      reject(new Error(`cannot read metrics from ${host}:${String(port)}: ${err.message}`))
    })
  })
}

/** Samples of the text format (comments skipped; label values unescaped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    out.push({ name: m[1] ?? '', labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) })
  }
  return out
}

const SHORT_PROGRAMS: Readonly<Record<string, string>> = { NFS_PROGRAM: 'NFS', MOUNT_PROGRAM: 'MOUNT', PMAP_PROG: 'PMAP' }

interface Row {
  name: string
  calls: number
  failures: number
  count: number
  sum: number
  buckets: [number, number][]
}

export function formatStats(samples: readonly Sample[]): string {
  const rows = new Map<string, Row>()
  const row = (l: Record<string, string>): Row => {
    const key = `${l.program ?? ''}/${l.version ?? ''}/${l.procedure ?? ''}`
    let r = rows.get(key)
    if (r === undefined) {
      const proc = (l.procedure ?? '').replace(/^[A-Z]+PROC\d*_/, '')
      r = { name: `${SHORT_PROGRAMS[l.program ?? ''] ?? l.program ?? ''}${l.version ?? ''} ${proc}`, calls: 0, failures: 0, count: 0, sum: 0, buckets: [] }
      rows.set(key, r)
    }
    return r
  }
  const totals = new Map<string, number>()
  for (const s of samples) {
    switch (s.name) {
      case 'tsnfs_rpc_calls_total':
        row(s.labels).calls += s.value
        break
      case 'tsnfs_rpc_result_failures_total':
      case 'tsnfs_rpc_handler_errors_total':
        row(s.labels).failures += s.value
        break
      case 'tsnfs_rpc_handler_duration_seconds_count':
        row(s.labels).count = s.value
        break
      case 'tsnfs_rpc_handler_duration_seconds_sum':
        row(s.labels).sum = s.value
        break
      case 'tsnfs_rpc_handler_duration_seconds_bucket':
        row(s.labels).buckets.push([s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value])
        break
      default: {
        const key = s.name === 'tsnfs_rpc_replies_total' ? `replies ${s.labels.status ?? ''}` : s.name
        totals.set(key, (totals.get(key) ?? 0) + s.value)
      }
    }
  }
  const header = ['procedure', 'calls', 'failed', 'mean', 'p50', 'p99']
  const table = [...rows.values()]
    .filter((r) => r.calls > 0)
    .sort((a, b) => b.calls - a.calls || a.name.localeCompare(b.name))
    .map((r) => [r.name, String(r.calls), String(r.failures), r.count === 0 ? '-' : duration(r.sum / r.count), quantile(r, 0.5), quantile(r, 0.99)])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((cells) => (cells[i] ?? '').length)))
  const fmt = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd() + '\n'
  const t = (k: string): number => totals.get(k) ?? 0
  const replies = [...totals].filter(([k, v]) => k.startsWith('replies ') && v > 0).map(([k, v]) => `${k.slice(8)} ${String(v)}`)
  return (
    fmt(header) +
    (table.length === 0 ? '(no calls yet)\n' : table.map(fmt).join('')) +
    '\n' +
    `replies      ${replies.length === 0 ? 'none' : replies.join(', ')}\n` +
    `dropped      ${String(t('tsnfs_rpc_dropped_total'))} records, DRC hits ${String(t('tsnfs_drc_hits_total'))}, DRC in-progress drops ${String(t('tsnfs_drc_in_progress_drops_total'))}\n` +
    `connections  ${String(t('tsnfs_connections_open'))} open, ${String(t('tsnfs_connections_accepted_total'))} accepted, ${String(t('tsnfs_rpc_framing_errors_total'))} framing errors\n` +
    `bytes        ${bytes(t('tsnfs_rpc_received_bytes_total'))} in, ${bytes(t('tsnfs_rpc_sent_bytes_total'))} out\n` +
    `memory       ${bytes(t('process_resident_memory_bytes'))} resident, ${bytes(t('nodejs_heap_used_bytes'))} heap, ${bytes(t('nodejs_external_memory_bytes'))} external\n` +
    `pools        ${bytes(t('tsnfs_memory_pool_bytes'))} free buffers, caches ${bytes(t('tsnfs_memory_cache_bytes'))}, ${String(t('tsnfs_memory_reclaims_total'))} idle reclaims\n`
  )
}

/** The bucket bound below which a fraction q of the calls finished ("<= 250µs"). */
function quantile(r: Row, q: number): string {
  if (r.count === 0) return '-'
  const sorted = [...r.buckets].sort((a, b) => a[0] - b[0])
  const hit = sorted.find(([, n]) => n >= q * r.count)
  return hit === undefined || hit[0] === Infinity ? '> 5s' : `<=${duration(hit[0])}`
}

function duration(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)}µs`
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)}ms`
  return `${s.toFixed(2)}s`
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? String(v) : v.toFixed(1)} ${units[i] ?? ''}`
}
