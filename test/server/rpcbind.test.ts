/*
 * registerWithRpcbind against a portmapper we control (a tsnfs server's own
 * PORTMAP, over PMAP v2 since there is no local socket): stale mappings are
 * replaced, every version lands on tcp and udp, close removes them; an
 * unreachable portmapper is RPCBIND_UNREACHABLE. Two servers on one host
 * (issue 11 point 7): the mappings of a server that still answers are not
 * replaced unless asked (then with a warning), and unregistering removes
 * only the mappings that still point at our own port.
 */
import t from 'tap'
import type { Test } from 'tap'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { silentLogger } from '../../server/logger.ts'
import type { Logger } from '../../server/logger.ts'
import { registerWithRpcbind, rpcbindAnswers } from '../../server/rpcbind.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { startServer } from '../helpers/server.ts'

const P = PMAP_PROG.versions.PMAP_VERS.procs
const FAKE = [
  { prog: 300001, versions: new Map([[1, null], [2, null]]) },
  { prog: 300002, versions: new Map([[3, null]]) },
]

/** A portmapper (a tsnfs server's PORTMAP) and a client of it listing the mappings of the FAKE programs. */
async function portmapper(t: Test): Promise<{ port: number; pm: RpcTcpClient; ours: () => Promise<string[]> }> {
  const { port } = await startServer(t)
  const pm = await RpcTcpClient.connect('127.0.0.1', port, { cred: 'none' })
  t.teardown(() => pm.close())
  const ours = async (): Promise<string[]> =>
    (await pm.call(100000, 2, P.PMAPPROC_DUMP, undefined))
      .map((n) => n.map)
      .filter((m) => m.prog >= 300001)
      .map((m) => `${String(m.prog)}/${String(m.vers)}/${String(m.prot)}/${String(m.port)}`)
      .sort()
  return { port, pm, ours }
}

/** A logger that keeps its warnings. */
function recording(): { log: Logger; warnings: string[] } {
  const warnings: string[] = []
  const log: Logger = { ...silentLogger, warn: (a: object | string, msg?: string) => { warnings.push(typeof a === 'string' ? a : (msg ?? '')) }, child: () => log }
  return { log, warnings }
}

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

t.test('a server that still answers keeps its mappings unless we are told to replace them', async (t) => {
  const { port, pm, ours } = await portmapper(t)
  const target = { socketPath: '', port }
  // Another live server: a tsnfs server answers RPC on its port (PROG_UNAVAIL for 300001 is still an answer).
  const other = await startServer(t)
  const theirs = String(other.port)
  for (const prot of [6, 17]) t.equal(await pm.call(100000, 2, P.PMAPPROC_SET, { prog: 300001, vers: 1, prot, port: other.port }), true)
  await t.rejects(registerWithRpcbind(FAKE, 4242, silentLogger, target), { code: 'RPCBIND_IN_USE', message: new RegExp(`300001/1 to port ${theirs}, where another server answers`) })
  t.same(await ours(), [`300001/1/17/${theirs}`, `300001/1/6/${theirs}`], 'its mappings are untouched, nothing of ours was added')

  const { log, warnings } = recording()
  const reg = await registerWithRpcbind(FAKE, 4242, log, target, { replace: true })
  t.same(warnings, ['replacing the rpcbind registration of another server that still answers'], 'replacing warns')
  t.same(await ours(), ['300001/1/17/4242', '300001/1/6/4242', '300001/2/17/4242', '300001/2/6/4242', '300002/3/17/4242', '300002/3/6/4242'])
  await reg.unregister()
  t.same(await ours(), [], 'ours removed at the end')
})

t.test('unregister removes only the mappings that still point at our port', async (t) => {
  const { port, pm, ours } = await portmapper(t)
  const target = { socketPath: '', port }
  const reg = await registerWithRpcbind(FAKE, 4242, silentLogger, target)
  // A second server took over 300002/3 (as --rpcbind-replace does) while we run.
  t.equal(await pm.call(100000, 2, P.PMAPPROC_UNSET, { prog: 300002, vers: 3, prot: 0, port: 0 }), true)
  for (const prot of [6, 17]) await pm.call(100000, 2, P.PMAPPROC_SET, { prog: 300002, vers: 3, prot, port: 5555 })
  await reg.unregister()
  t.same(await ours(), ['300002/3/17/5555', '300002/3/6/5555'], "the other server's mappings stay; ours are gone")
})
