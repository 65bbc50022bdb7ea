/*
 * registerWithRpcbind against a portmapper we control (a tsnfs server's own
 * PORTMAP, over PMAP v2 since there is no local socket): stale mappings are
 * replaced, every version lands on tcp and udp, close removes them; an
 * unreachable portmapper is RPCBIND_UNREACHABLE.
 */
import t from 'tap'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { silentLogger } from '../../server/logger.ts'
import { registerWithRpcbind, rpcbindAnswers } from '../../server/rpcbind.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { startServer } from '../helpers/server.ts'

const P = PMAP_PROG.versions.PMAP_VERS.procs
const FAKE = [
  { prog: 300001, versions: new Map([[1, null], [2, null]]) },
  { prog: 300002, versions: new Map([[3, null]]) },
]

t.test('register, replace stale mappings, unregister', async (t) => {
  const { port } = await startServer(t)
  const target = { socketPath: '', port }
  t.equal(await rpcbindAnswers(target), true, 'the server answers PMAPPROC_NULL')
  const pm = await RpcTcpClient.connect('127.0.0.1', port, { cred: 'none' })
  t.teardown(() => pm.close())
  const ours = async (): Promise<string[]> =>
    (await pm.call(100000, 2, P.PMAPPROC_DUMP, undefined))
      .map((n) => n.map)
      .filter((m) => m.prog >= 300001)
      .map((m) => `${String(m.prog)}/${String(m.vers)}/${String(m.prot)}/${String(m.port)}`)
      .sort()
  t.equal(await pm.call(100000, 2, P.PMAPPROC_SET, { prog: 300001, vers: 1, prot: 6, port: 999 }), true, 'a stale mapping')
  const reg = await registerWithRpcbind(FAKE, 4242, silentLogger, target)
  t.same(reg.programs, [[300001, 1], [300001, 2], [300002, 3]])
  t.same(await ours(), ['300001/1/17/4242', '300001/1/6/4242', '300001/2/17/4242', '300001/2/6/4242', '300002/3/17/4242', '300002/3/6/4242'])
  await reg.unregister()
  t.same(await ours(), [], 'all gone after unregister')
})

t.test('nobody listening', async (t) => {
  const { port, server } = await startServer(t)
  await server.close()
  t.equal(await rpcbindAnswers({ port }), false)
  await t.rejects(registerWithRpcbind(FAKE, 4242, silentLogger, { socketPath: '', port }), { code: 'RPCBIND_UNREACHABLE' })
  await t.rejects(registerWithRpcbind(FAKE, 4242, silentLogger, { socketPath: '/nonexistent/rpcbind.sock', port }), { code: 'RPCBIND_UNREACHABLE' }, 'a missing local socket falls back to TCP')
})
