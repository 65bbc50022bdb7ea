/*
 * The RPC limits reach the listeners through createServer({ rpcLimits }):
 * the record size cap on a real NFS WRITE, and the connection caps.
 */
import t from 'tap'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import { Nfs } from '../../helpers/e2e.ts'
import { RawConnection } from '../../helpers/rpc.ts'
import { ROOT_CRED, connect, mountRoot, startServer } from '../../helpers/server.ts'

t.test('maxRecordSize: a WRITE record over the cap closes that connection only', async t => {
  const { port, server } = await startServer(t, undefined, { rpcLimits: { maxRecordSize: 4096 } })
  const c = await connect(t, port)
  const nfs = new Nfs(c)
  const root = await mountRoot(c, '/export')
  const file = await nfs.create(root, 'f')
  t.equal(await nfs.write(file, 0n, Buffer.alloc(2000, 1)), 0, 'a record under the cap is served')
  const big = await RpcTcpClient.connect('127.0.0.1', port, { cred: ROOT_CRED, timeoutMs: 30_000 })
  t.teardown(() => big.close())
  await t.rejects(new Nfs(big).write(file, 0n, Buffer.alloc(8000, 2)), 'a record over the cap gets no reply: the connection is closed')
  t.equal(server.stats.framingErrors, 1)
  const r = await nfs.read(file, 0n, 4000)
  t.equal(r.status, 0, 'the other connection is still served')
  t.strictSame(r.data, Buffer.alloc(2000, 1), 'and the oversized write did not happen')
})

t.test('connection caps: per client and in total', async t => {
  const { port, server } = await startServer(t, undefined, { rpcLimits: { maxConnectionsPerClient: 2, maxConnections: 10 } })
  await RawConnection.open(t, port)
  await RawConnection.open(t, port)
  const third = await RawConnection.open(t, port)
  await third.closed
  t.equal(server.stats.connectionsRefused, 1, 'the third connection from one address is refused')
  t.equal(server.stats.connectionsOpen, 2)
})
