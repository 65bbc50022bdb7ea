/*
 * Metrics of a whole server: per-procedure counters and latency histograms,
 * result failures, DRC hits, connections and bytes, on the Prometheus text
 * endpoint; request-scoped debug logs only when debug is enabled.
 */
import t from 'tap'
import { request } from 'node:http'
import { Histogram, LATENCY_BUCKETS_S } from '../../server/metrics/histogram.ts'
import { parseMetricsAddress } from '../../server/metrics/endpoint.ts'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { NFS3, connect, mountRoot, startServer } from '../helpers/server.ts'
import { NFS_PROG, NO_ATTRS, Nfs, b, fh, procRecord } from '../helpers/e2e.ts'

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** `name{labels}` -> value, for exact lookups. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

const GETATTR = 'program="NFS_PROGRAM",version="3",procedure="NFSPROC3_GETATTR"'
const LOOKUP = 'program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP"'

t.test('histogram buckets are cumulative and bounded by +Inf', async (t) => {
  const h = new Histogram()
  t.equal(LATENCY_BUCKETS_S[0], 0.00005)
  t.equal(LATENCY_BUCKETS_S.at(-1), 5)
  for (const v of [0.00001, 0.00005, 0.00006, 0.003, 7]) h.observe(v)
  const cum = h.cumulative()
  t.equal(cum[0], 2, '<= 50 µs, the bound itself included')
  t.equal(cum[1], 3, '<= 100 µs')
  t.equal(cum[6], 4, '<= 5 ms')
  t.equal(cum[15], 4, '<= 5 s')
  t.equal(cum[16], 5, '+Inf')
  t.equal(h.count, 5)
  t.ok(Math.abs(h.sum - 7.00312) < 1e-9)
})

t.test('metrics addresses', async (t) => {
  t.same(parseMetricsAddress('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 })
  t.same(parseMetricsAddress('[::1]:9100'), { host: '::1', port: 9100 })
  t.same(parseMetricsAddress(':9100'), { host: '0.0.0.0', port: 9100 })
  t.same(parseMetricsAddress('9100'), { host: '127.0.0.1', port: 9100 })
  t.throws(() => parseMetricsAddress('host:99999'), /not a host:port/)
  t.throws(() => parseMetricsAddress('nonsense'), /not a host:port/)
})

t.test('the endpoint counts calls, latencies, failures, DRC hits, connections and bytes', async (t) => {
  const { server, port } = await startServer(t, undefined, { metrics: { host: '127.0.0.1', port: 0 } })
  const mport = server.metricsPort
  t.ok(mport !== null && mport > 0, 'listens on a port of its own')
  if (mport === null) return
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/export')
  for (let i = 0; i < 5; i++) t.equal((await nfs.getattr(root)).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.lookup(root, 'missing')).status, nfsstat3.NFS3ERR_NOENT)
  // The same CREATE record twice (same xid): the second is answered from the DRC.
  const create = procRecord(77, NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where: { dir: fh(root), name: b('f') }, how: { mode: 0, obj_attributes: NO_ATTRS } })
  const first = await cl.callRaw(create)
  t.same(await cl.callRaw(create), first, 'the replay is byte for byte the first reply')

  const res = await get(mport, '/metrics')
  t.equal(res.status, 200)
  t.equal(res.type, 'text/plain; version=0.0.4; charset=utf-8')
  t.match(res.body, /^# HELP tsnfs_rpc_calls_total .+\n# TYPE tsnfs_rpc_calls_total counter\n/)
  t.match(res.body, /# TYPE tsnfs_rpc_handler_duration_seconds histogram\n/)
  const s = samples(res.body)
  t.equal(s.get(`tsnfs_rpc_calls_total{${GETATTR}}`), 5, 'GETATTR calls')
  t.equal(s.get(`tsnfs_rpc_calls_total{program="MOUNT_PROGRAM",version="3",procedure="MOUNTPROC3_MNT"}`), 1, 'MNT calls')
  t.equal(s.get(`tsnfs_rpc_handler_duration_seconds_count{${GETATTR}}`), 5, 'GETATTR latencies observed')
  t.equal(s.get(`tsnfs_rpc_handler_duration_seconds_bucket{${GETATTR},le="+Inf"}`), 5)
  let prev = 0
  for (const le of LATENCY_BUCKETS_S) {
    const v = s.get(`tsnfs_rpc_handler_duration_seconds_bucket{${GETATTR},le="${String(le)}"}`) ?? -1
    t.ok(v >= prev, `bucket le=${String(le)} is cumulative`)
    prev = v
  }
  t.ok((s.get(`tsnfs_rpc_handler_duration_seconds_sum{${GETATTR}}`) ?? 0) > 0, 'latency sum')
  t.equal(s.get(`tsnfs_rpc_result_failures_total{${LOOKUP},status="2"}`), 1, 'LOOKUP NOENT counted by status')
  t.equal(s.get(`tsnfs_rpc_calls_total{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_CREATE"}`), 2, 'both CREATEs counted as calls')
  t.equal(s.get(`tsnfs_rpc_handler_duration_seconds_count{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_CREATE"}`), 1, 'the handler ran once')
  t.equal(s.get('tsnfs_drc_hits_total{listener="nfs"}'), 1, 'one DRC hit')
  t.equal(s.get('tsnfs_connections_open{listener="nfs"}'), 1)
  t.equal(s.get('tsnfs_connections_accepted_total{listener="nfs"}'), 1)
  t.ok((s.get('tsnfs_rpc_received_bytes_total{listener="nfs"}') ?? 0) > 0, 'bytes in')
  t.ok((s.get('tsnfs_rpc_sent_bytes_total{listener="nfs"}') ?? 0) > 0, 'bytes out')
  t.equal(s.get('tsnfs_rpc_replies_total{listener="nfs",status="success"}'), 8, 'MNT, 5 GETATTR, LOOKUP, CREATE (the replay is not a new reply)')
  t.ok((s.get('process_resident_memory_bytes') ?? 0) > 0)
  t.equal(server.renderMetrics().split('\n')[0], res.body.split('\n')[0], 'renderMetrics gives the same text')

  t.equal((await get(mport, '/')).status, 404, 'other paths: 404')
  t.equal((await get(mport, '/metrics', 'POST')).status, 405, 'other methods: 405')
  t.equal((await get(mport, '/metrics', 'HEAD')).status, 200, 'HEAD works')
})

t.test('request ids: a child logger per call only when debug is enabled', async (t) => {
  const bindings: object[] = []
  const lines: { obj: object; msg: string | undefined }[] = []
  let debug = false
  const make = (): Logger => ({
    ...silentLogger,
    debug: (obj: object | string, msg?: string) => {
      if (typeof obj === 'object') lines.push({ obj, msg })
    },
    child: (b: object) => {
      bindings.push(b)
      return make()
    },
    isLevelEnabled: (level: string) => level !== 'debug' || debug,
  })
  const { port } = await startServer(t, undefined, { logger: make() })
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/export')
  const before = bindings.length
  await nfs.getattr(root)
  t.equal(bindings.filter((x) => 'xid' in x).length, 0, 'no per-request child logger at info level')
  t.equal(bindings.length, before, 'no child logger at all on the call path')
  debug = true
  await nfs.lookup(root, 'nothing')
  const req = bindings.filter((x): x is { xid: number; peer: string; proc: string } => 'xid' in x)
  t.equal(req.length, 1, 'one child logger for the call')
  t.equal(req[0]?.proc, 'NFS_PROGRAM.NFSPROC3_LOOKUP')
  t.match(req[0]?.peer, /^127\.0\.0\.1:\d+$/)
  t.equal(typeof req[0]?.xid, 'number')
  t.same(lines.map((l) => l.msg).filter((m) => m === 'call' || m === 'reply'), ['call', 'reply'], 'a call line and a reply line')
  t.match(lines.find((l) => l.msg === 'reply')?.obj, { status: nfsstat3.NFS3ERR_NOENT }, 'the reply line carries the status')
})
