/*
 * Where the client looked (issue 11 point 7): a failure to reach the
 * portmapper, MOUNT or NFS names the service, host and port it tried
 * ("portmapper at 127.0.0.1:111: connection refused"); and `host:PORT` in an
 * nfs:// URL is the server's NFS port, where MOUNT is asked first, so a
 * portmapper that maps MOUNT to another server on the host is not used.
 */
import t from 'tap'
import { NfsClient, RpcError, getPort } from '../../client/index.ts'
import { closedPort } from '../helpers/ports.ts'
import { startServer } from '../helpers/server.ts'
import { tsnfs } from '../cli/cli.ts'

const failure = async (p: Promise<unknown>): Promise<RpcError> => {
  const err = await p.then(() => null, (e: unknown) => e)
  if (!(err instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(err)}`)
  return err
}

t.test('no portmapper: the error names it, its host and port', async (t) => {
  const pm = await closedPort()
  const tcp = await failure(NfsClient.mount(`nfs://127.0.0.1/export?portmapport=${String(pm)}`))
  t.equal(tcp.message, `portmapper at 127.0.0.1:${String(pm)}: connection refused`)
  t.equal(tcp.code, 'RPC_CONNECTION_CLOSED', 'the code is kept')
  const udp = await failure(NfsClient.mount(`nfs://127.0.0.1/export?portmapport=${String(pm)}&proto=udp&timeo=1&retrans=0`))
  t.equal(udp.message, `portmapper at 127.0.0.1:${String(pm)} (udp): no reply`)
  t.equal(udp.code, 'RPC_TIMEOUT')
})

t.test('a portmapper without the program says which portmapper', async (t) => {
  const fx = await startServer(t)
  const err = await failure(getPort({ host: '127.0.0.1', portmapPort: fx.port, protocol: 'tcp' }, 399_999, 1))
  t.equal(err.message, `portmapper at 127.0.0.1:${String(fx.port)}: program 399999 version 1 over tcp is not registered`)
  t.equal(err.code, 'RPC_PROG_NOT_REGISTERED')
  const mount = await failure(getPort({ host: '127.0.0.1', portmapPort: fx.port, protocol: 'tcp' }, 100005, 2))
  t.equal(mount.message, `portmapper at 127.0.0.1:${String(fx.port)}: MOUNT version 2 over tcp is not registered`, 'MOUNT and NFS by name')
})

t.test('the URL port with nothing there, nor a portmapper: both places are named', async (t) => {
  const port = await closedPort()
  const pm = await closedPort()
  const err = await failure(NfsClient.mount(`nfs://127.0.0.1:${String(port)}/export?portmapport=${String(pm)}`))
  t.equal(err.message, `MOUNT at 127.0.0.1:${String(port)} (the URL's port): connection refused; portmapper at 127.0.0.1:${String(pm)}: connection refused`)
})

t.test('MOUNT answers but NFS does not: NFS is named', async (t) => {
  const fx = await startServer(t)
  const nfs = await closedPort()
  const err = await failure(NfsClient.mount({ host: '127.0.0.1', exportPath: '/export' }, { mountport: fx.port, nfsport: nfs }))
  t.equal(err.message, `NFS at 127.0.0.1:${String(nfs)}: connection refused`)
})

t.test("host:PORT is the server's port: MOUNT there, not another server's from the portmapper", async (t) => {
  const a = await startServer(t)
  const b = await startServer(t)
  const seed = await NfsClient.mount(b.url('/export'))
  await seed.writeFile('/which', Buffer.from('server b'))
  await seed.umount()
  // a's PORTMAP maps MOUNT to a's port; the URL names b's.
  const c = await NfsClient.mount(`nfs://127.0.0.1:${String(b.port)}/export?portmapport=${String(a.port)}`)
  t.teardown(() => c.umount())
  t.equal((await c.readFile('/which')).toString(), 'server b', 'the export of the server at the URL port')
  t.strictSame(c.stats().portmap, {}, 'no portmapper was asked')
})

t.test('tsnfs ls prints where it looked', async (t) => {
  const port = await closedPort()
  const pm = await closedPort()
  const r = await tsnfs(['ls', `nfs://127.0.0.1:${String(port)}/export?portmapport=${String(pm)}`])
  t.equal(r.code, 1)
  t.equal(r.stderr, `tsnfs ls: nfs://127.0.0.1:${String(port)}/export?portmapport=${String(pm)}: MOUNT at 127.0.0.1:${String(port)} (the URL's port): connection refused; portmapper at 127.0.0.1:${String(pm)}: connection refused\n`)
})
