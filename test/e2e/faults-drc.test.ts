/*
 * The duplicate request cache under loss and reordering (issue 7 §4;
 * RFC 1813 §4.5): NfsClient through a loopback relay that drops, duplicates
 * and delays UDP datagrams both ways, or cuts TCP connections mid-request.
 * A sequence of non-idempotent operations (CREATE GUARDED, MKDIR, LINK,
 * RENAME, REMOVE, RMDIR, WRITE) all succeed with no spurious EXIST or NOENT;
 * each reached the backend exactly once (counted below the server); the
 * server's calls minus its DRC answers equal the handler executions; and the
 * end state is exact.
 */
import t from 'tap'
import type { Test } from 'tap'
import { NfsClient } from '../../client/index.ts'
import type { ClientOptions } from '../../client/index.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { FaultyVfs } from '../helpers/faulty-vfs.ts'
import { startCuttingTcpProxy, startLossyUdpProxy } from '../helpers/lossy-proxy.ts'
import { startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'

const N = 30
const NON_IDEMPOTENT = ['SETATTR', 'WRITE', 'CREATE', 'MKDIR', 'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK']
const PROC = { SETATTR: 2, WRITE: 7, CREATE: 8, MKDIR: 9, SYMLINK: 10, MKNOD: 11, REMOVE: 12, RMDIR: 13, RENAME: 14, LINK: 15 } as const

async function serve(t: Test): Promise<{ s: ServerFixture; backend: FaultyVfs }> {
  const backend = new FaultyVfs(new MemoryVfs())
  const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n', { backends: new Map([['memory', () => backend.vfs]]) })
  return { s, backend }
}

async function mount(t: Test, s: ServerFixture, nfsport: number, opts: ClientOptions): Promise<NfsClient> {
  const nfs = await NfsClient.mount({ host: '127.0.0.1', exportPath: '/export' }, { nfsport, mountport: s.port, uid: 0, gid: 0, ...opts })
  t.teardown(() => nfs.umount().catch(() => undefined))
  return nfs
}

const content = (i: number): Buffer => Buffer.from(`file ${String(i)} `.repeat(100 + i))

/** Every step must succeed: a duplicate execution would show as EXIST or NOENT here. */
async function sequence(nfs: NfsClient): Promise<void> {
  await nfs.mkdir('/w')
  for (let i = 0; i < N; i++) {
    await nfs.create(`/w/f${String(i)}`, { exclusive: true })
    await nfs.mkdir(`/w/m${String(i)}`)
    await nfs.link(`/w/f${String(i)}`, `/w/l${String(i)}`)
    await nfs.rename(`/w/f${String(i)}`, `/w/r${String(i)}`)
    await nfs.unlink(`/w/l${String(i)}`)
    if (i % 2 === 1) await nfs.rmdir(`/w/m${String(i)}`)
    await nfs.writeFile(`/w/r${String(i)}`, content(i))
  }
}

async function checkOutcome(t: Test, s: ServerFixture, backend: FaultyVfs): Promise<void> {
  // The end state, read back over a clean TCP connection.
  const clean = await mount(t, s, s.port, {})
  const names = (await clean.readdir('/w')).sort()
  const want = Array.from({ length: N }, (_, i) => [`r${String(i)}`, ...(i % 2 === 0 ? [`m${String(i)}`] : [])]).flat().sort()
  t.strictSame(names, want, 'the directory holds exactly what the sequence made')
  for (let i = 0; i < N; i++) {
    const st = await clean.stat(`/w/r${String(i)}`)
    if (st.nlink !== 1 || !(await clean.readFile(`/w/r${String(i)}`)).equals(content(i))) t.fail(`r${String(i)}: nlink ${String(st.nlink)} or content differs`)
  }

  // Exactly once, as the backend saw it.
  t.equal(backend.count('create'), N, 'CREATE reached the backend once per file')
  t.equal(backend.count('mkdir'), N + 1, 'MKDIR once each')
  t.equal(backend.count('link'), N, 'LINK once each')
  t.equal(backend.count('rename'), N, 'RENAME once each')
  t.equal(backend.count('remove'), N, 'REMOVE once each')
  t.equal(backend.count('rmdir'), N / 2, 'RMDIR once each')

  // Calls received = handler executions + answers from the cache + copies dropped while the original ran.
  const stats = s.server.stats
  const metrics = s.server.renderMetrics()
  let calls = 0
  let executed = 0
  for (const name of NON_IDEMPOTENT) {
    calls += stats.calls[`100003/3/${String(PROC[name as keyof typeof PROC])}`] ?? 0
    const m = new RegExp(`tsnfs_rpc_handler_duration_seconds_count\\{[^}]*procedure="(?:NFSPROC3_)?${name}"[^}]*\\} (\\d+)`).exec(metrics)
    executed += Number(m?.[1] ?? 0)
  }
  t.ok(stats.drcHits + stats.drcInProgressDrops > 0, `the cache answered ${String(stats.drcHits)} retransmissions and dropped ${String(stats.drcInProgressDrops)} in progress`)
  t.equal(calls - executed, stats.drcHits + stats.drcInProgressDrops, `${String(calls)} non-idempotent calls = ${String(executed)} executions + cache answers`)
  t.equal(backend.count('create') + backend.count('mkdir') + backend.count('link') + backend.count('rename') + backend.count('remove') + backend.count('rmdir'),
    ['CREATE', 'MKDIR', 'LINK', 'RENAME', 'REMOVE', 'RMDIR'].reduce((a, name) => a + Number(new RegExp(`tsnfs_rpc_handler_duration_seconds_count\\{[^}]*procedure="(?:NFSPROC3_)?${name}"[^}]*\\} (\\d+)`).exec(metrics)?.[1] ?? 0), 0),
    'each namespace handler execution is one backend operation')
}

t.test('UDP: 15% dropped, 10% duplicated, 20% delayed up to 150 ms, both ways', async t => {
  const { s, backend } = await serve(t)
  const proxy = await startLossyUdpProxy(t, s.port, { drop: 0.15, duplicate: 0.1, delay: 0.2, maxDelayMs: 150, seed: 42 })
  const nfs = await mount(t, s, proxy.port, { proto: 'udp', timeoutMs: 100, maxTimeoutMs: 800, retrans: 40 })
  await sequence(nfs)
  const c = proxy.counters
  t.comment(`udp relay: ${String(c.forwarded)} forwarded, ${String(c.dropped)} dropped, ${String(c.duplicated)} duplicated, ${String(c.delayed)} delayed; client retransmits ${String(nfs.stats().rpc.retransmits)}`)
  t.ok(c.dropped > 0 && c.duplicated > 0 && c.delayed > 0, 'faults were injected')
  await checkOutcome(t, s, backend)
})

t.test('TCP: connections cut mid-request (half a record, or before the reply)', async t => {
  const { s, backend } = await serve(t)
  const proxy = await startCuttingTcpProxy(t, s.port, { cut: 0.08, seed: 7 })
  const nfs = await mount(t, s, proxy.port, { proto: 'tcp', timeoutMs: 2000, retrans: 40, maxReconnectDelayMs: 50 })
  await sequence(nfs)
  const c = proxy.counters
  t.comment(`tcp relay: ${String(c.calls)} calls, ${String(c.cutMidRecord)} cut mid-record, ${String(c.cutBeforeReply)} cut before the reply; client reconnects ${String(nfs.stats().rpc.reconnects)}, retransmits ${String(nfs.stats().rpc.retransmits)}`)
  t.ok(c.cutMidRecord > 0 && c.cutBeforeReply > 0, 'connections were cut both ways')
  await checkOutcome(t, s, backend)
})
