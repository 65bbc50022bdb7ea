import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { NfsClient } from '../../client/nfs-client.ts'
import { RpcTcpTransport } from '../../client/rpc/tcp-transport.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { startServer } from '../helpers/server.ts'
import { startProxy } from './proxy.ts'

const NULL = NFS_PROGRAM.versions.NFS_V3.procs.NFSPROC3_NULL

t.test('TCP: a cut connection is re-established and every outstanding call re-sent with its xid', async t => {
  const fx = await startServer(t)
  const proxy = await startProxy(t, fx.port)
  const c = await NfsClient.mount({ host: '127.0.0.1', exportPath: '/export' }, { nfsport: proxy.port, mountport: fx.port, timeoutMs: 10_000 })
  t.teardown(() => c.umount())
  const observer = await NfsClient.mount(fx.url('/export'), { noac: true })
  t.teardown(() => observer.umount())
  await c.create('victim')
  for (let i = 0; i < 20; i++) await c.create(`f${i}`)

  proxy.dropReplies = true
  const removal = c.unlink('victim')
  const getattrs = Array.from({ length: 20 }, (_, i) => c.getattr(c.root, { revalidate: true }).then(() => i))
  // The server runs the REMOVE; its reply is lost.
  while (await observer.stat('victim').then(() => true, () => false)) await sleep(5)
  t.ok(c.nfs.transport.inFlight >= 21, 'calls are outstanding when the connection breaks')
  proxy.dropReplies = false
  proxy.cut()

  await removal
  t.pass('the re-sent REMOVE got the original OK from the duplicate request cache, not NOENT')
  t.strictSame(await Promise.all(getattrs), Array.from({ length: 20 }, (_, i) => i))
  const s = c.stats()
  t.equal(s.rpc.reconnects, 1)
  t.ok(s.rpc.retransmits >= 21)
  await t.rejects(c.stat('victim'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })
  t.ok((await c.stat('f3')).isFile(), 'the connection keeps working')
})

t.test('TCP soft: RPC_TIMEOUT after retrans tries when the server is gone', async t => {
  const fx = await startServer(t)
  const proxy = await startProxy(t, fx.port)
  const tr = await RpcTcpTransport.connect('127.0.0.1', proxy.port, { policy: { timeoutMs: 40, retrans: 2, hard: false, maxReconnectDelayMs: 20 } })
  t.teardown(() => tr.close())
  await tr.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  // That first call may itself have timed out once on a loaded machine (40 ms): count from here.
  const before = tr.counters().timeouts
  proxy.refuse = true
  proxy.cut()
  await t.rejects(tr.call(NFS_PROGRAM.prog, 3, NULL, undefined), { code: 'RPC_TIMEOUT' })
  t.equal(tr.counters().timeouts - before, 3, 'one try and two retransmissions')
  t.equal(tr.inFlight, 0)
  proxy.refuse = false
  await tr.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  t.pass('a later call reconnects')
})

t.test('TCP hard: keeps retrying and reconnecting until the server is back', async t => {
  const fx = await startServer(t)
  const proxy = await startProxy(t, fx.port)
  const tr = await RpcTcpTransport.connect('127.0.0.1', proxy.port, { policy: { timeoutMs: 20, retrans: 1, hard: true, maxTimeoutMs: 40, maxReconnectDelayMs: 20 } })
  t.teardown(() => tr.close())
  proxy.refuse = true
  proxy.cut()
  let settled = false
  const call = tr.call(NFS_PROGRAM.prog, 3, NULL, undefined).finally(() => {
    settled = true
  })
  while (tr.counters().timeouts < 5) await sleep(10)
  t.equal(settled, false, 'still waiting after more timeouts than a soft mount allows')
  proxy.refuse = false
  await call
  t.ok(tr.counters().reconnects >= 1)
})

t.test('TCP: close fails outstanding calls; calls after close fail', async t => {
  const fx = await startServer(t)
  const proxy = await startProxy(t, fx.port)
  const tr = await RpcTcpTransport.connect('127.0.0.1', proxy.port, { maxInFlight: 1 })
  proxy.dropReplies = true
  const a = tr.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  const b = tr.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  t.equal(tr.inFlight, 1, 'the second call waits in the queue')
  const closing = tr.close()
  await t.rejects(a, { code: 'RPC_CONNECTION_CLOSED' })
  await t.rejects(b, { code: 'RPC_CONNECTION_CLOSED' })
  await closing
  await t.rejects(tr.call(NFS_PROGRAM.prog, 3, NULL, undefined), { code: 'RPC_CONNECTION_CLOSED' })
  await t.rejects(RpcTcpTransport.connect('127.0.0.1', 1), { code: 'RPC_CONNECTION_CLOSED' })
})

t.test('UDP: the same API over proto=udp', async t => {
  const fx = await startServer(t)
  const c = await NfsClient.mount(fx.url('/export', '/', 'proto=udp'))
  t.teardown(() => c.umount())
  t.equal(c.nfs.transport.protocol, 'udp')
  await c.mkdir('d')
  await c.create('d/f')
  await c.rename('d/f', 'd/g')
  t.strictSame(await c.readdir('d'), ['g'])
  t.equal((await c.readdirPlus('d'))[0]?.stats?.type, 'file')
  await c.rm('d', { recursive: true })
  await t.rejects(c.stat('d'), { code: 'NFS3ERR_NOENT' })
})
