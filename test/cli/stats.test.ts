/*
 * tsnfs stats: a served process with --metrics prints where the endpoint
 * is; stats reads it and prints one row per procedure called, with the
 * counters underneath.
 */
import t from 'tap'
import { formatStats, parseExposition } from '../../cli/stats.ts'
import { serveProcess, tsnfs } from './cli.ts'

t.test('serve --metrics and tsnfs stats', async (t) => {
  const dir = t.testdir({})
  const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', dir, '--metrics', '127.0.0.1:0', '--log-level', 'warn'])
  const at = /metrics: http:\/\/(127\.0\.0\.1:\d+)\/metrics\n/.exec(s.banner)?.[1]
  t.ok(at !== undefined, 'the banner prints the metrics URL')
  if (at === undefined) return
  const mounted = await tsnfs(['showmount', '-e', '--port', String(s.port), '127.0.0.1'])
  t.equal(mounted.code, 0)
  const r = await tsnfs(['stats', '--metrics', at])
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.split('\n')
  t.match(lines[0], /^procedure\s+calls\s+failed\s+mean\s+p50\s+p99$/)
  t.match(r.stdout, /\nMOUNT3 EXPORT\s+1\s+0\s+\d+(µs|\.\d+ms)\s+<=\S+\s+<=\S+\n/, 'the EXPORT call, once, with latencies')
  t.match(r.stdout, /\nreplies {6}success 1\n/)
  t.match(r.stdout, /\nconnections {2}0 open, 1 accepted, 0 framing errors\n/)
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0)
  const down = await tsnfs(['stats', '--metrics', at])
  t.equal(down.code, 1, 'no server: exit 1')
  t.match(down.stderr, /cannot read metrics from 127\.0\.0\.1:\d+/)
})

t.test('the table from a fixed exposition', async (t) => {
  const text = [
    '# HELP tsnfs_rpc_calls_total x',
    '# TYPE tsnfs_rpc_calls_total counter',
    'tsnfs_rpc_calls_total{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_READ"} 4',
    'tsnfs_rpc_calls_total{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP"} 10',
    'tsnfs_rpc_handler_duration_seconds_bucket{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP",le="0.0001"} 9',
    'tsnfs_rpc_handler_duration_seconds_bucket{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP",le="0.001"} 10',
    'tsnfs_rpc_handler_duration_seconds_bucket{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP",le="+Inf"} 10',
    'tsnfs_rpc_handler_duration_seconds_sum{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP"} 0.001',
    'tsnfs_rpc_handler_duration_seconds_count{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP"} 10',
    'tsnfs_rpc_result_failures_total{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_LOOKUP",status="2"} 3',
    'tsnfs_rpc_replies_total{listener="nfs",status="success"} 14',
    'tsnfs_rpc_replies_total{listener="nfs",status="garbageArgs"} 0',
    'tsnfs_drc_hits_total{listener="nfs"} 2',
    'tsnfs_connections_open{listener="nfs"} 1',
    'tsnfs_connections_accepted_total{listener="nfs"} 3',
    'tsnfs_rpc_received_bytes_total{listener="nfs"} 2048',
    'process_resident_memory_bytes 104857600',
    'nodejs_heap_used_bytes 20971520',
    'nodejs_external_memory_bytes 3145728',
    'tsnfs_memory_pool_bytes{pool="record"} 2228224',
    'tsnfs_memory_pool_bytes{pool="chunks"} 1048576',
    'tsnfs_memory_cache_bytes{cache="drc"} 1024',
    'tsnfs_memory_reclaims_total 2',
    '',
  ].join('\n')
  const samples = parseExposition(text)
  t.equal(samples.length, 21)
  t.same(samples[2]?.labels, { program: 'NFS_PROGRAM', version: '3', procedure: 'NFSPROC3_LOOKUP', le: '0.0001' })
  const out = formatStats(samples).split('\n')
  t.equal(out[0], 'procedure    calls  failed   mean      p50       p99')
  t.equal(out[1], 'NFS3 LOOKUP     10       3  100µs  <=100µs  <=1.00ms')
  t.equal(out[2], 'NFS3 READ        4       0      -        -         -')
  t.equal(out[4], 'replies      success 14')
  t.equal(out[5], 'dropped      0 records, DRC hits 2, DRC in-progress drops 0')
  t.equal(out[6], 'connections  1 open, 3 accepted, 0 framing errors')
  t.equal(out[7], 'bytes        2.0 KiB in, 0 B out')
  t.equal(out[8], 'memory       100.0 MiB resident, 20.0 MiB heap, 3.0 MiB external')
  t.equal(out[9], 'pools        3.1 MiB free buffers, caches 1.0 KiB, 2 idle reclaims')
})
